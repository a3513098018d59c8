"""No module imports another module's `_private` name (house rule): a leading underscore means "only this
module uses it", so a name that another module needs is made public where it lives (or moved lower).
Checked over the package and the benches: `from spuriverse.m import _x`, and `m._x` where `m` is a
spuriverse module bound by an import."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = [REPO / "spuriverse", REPO / "bench"]


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def private_imports(path: Path, module: str) -> list[str]:
    """'file:line: what' for every other module's private name that `path` (module `module`) imports."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[str] = []
    bound: dict[str, str] = {}  # local name -> spuriverse module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            if not source.startswith("spuriverse"):
                continue
            for alias in node.names:
                if _private(alias.name) and source != module:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: from {source} import {alias.name}")
                bound[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("spuriverse"):
                    bound[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or "spuriverse"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in bound and bound[node.value.id] != module):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_check_finds_private_imports(tmp_path, monkeypatch):
    # the measuring stick: each way of reaching into another module is caught, a module's own names are not
    pkg = tmp_path / "spuriverse" / "eval"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    src = pkg / "compare.py"
    src.write_text("from spuriverse.eval.metrics import _ratio, score\nfrom .metrics import _mm\n"
                   "from spuriverse.eval import metrics as m\nimport spuriverse.eval.items as items\n"
                   "from spuriverse.eval.compare import _own\nx = m._percentile_ci(items._key, m.score)\n", "utf-8")
    found = private_imports(src, "spuriverse.eval.compare")
    assert [f.split(": ", 1)[1] for f in found] == [
        "from spuriverse.eval.metrics import _ratio", "from spuriverse.eval.metrics import _mm",
        "m._percentile_ci", "items._key"]


def test_no_module_imports_another_modules_private_name():
    files = [p for root in ROOTS for p in sorted(root.rglob("*.py"))]
    assert files
    found = [hit for p in files for hit in private_imports(p, _module_name(p))]
    assert not found, ("imports of another module's _private name (make it public where it lives, or move it "
                       "lower):\n  " + "\n  ".join(found))
