"""House rules that a refactor can break without any behaviour test noticing: no function in `spuriverse/`
is longer than ~80 lines (a long function is a sign of steps that want names), and nothing in the
package points at design notes outside the repository (they live in `docs/`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "spuriverse"
REPO = PACKAGE.parent
MAX_FUNCTION_LINES = 80


def _function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of every function in `path`; the length runs from the first
    decorator (or the `def`) to the last line of the body, docstring included."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    out: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                assert child.end_lineno is not None
                out.append((f"{prefix}{child.name}", start, child.end_lineno - start + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def test_the_walk_measures_functions(tmp_path):
    # the measuring stick itself: a nested function and a decorated method are both found and counted
    src = tmp_path / "m.py"
    src.write_text("class C:\n    @staticmethod\n    def f():\n        def g():\n            return 1\n"
                   "        return g\n", "utf-8")
    assert _function_lengths(src) == [("C.f", 2, 5), ("C.f.g", 4, 2)]


def test_no_function_over_80_lines():
    files = sorted(PACKAGE.rglob("*.py"))
    assert files, f"no Python files under {PACKAGE}"
    offenders = [f"{path.relative_to(REPO)}:{line} {name} ({length} lines)"
                 for path in files for name, line, length in _function_lengths(path)
                 if length > MAX_FUNCTION_LINES]
    assert not offenders, (f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n  "
                           + "\n  ".join(offenders))


def test_no_reference_to_notes_outside_the_repo():
    # the project must not depend on files outside it: design notes are in docs/, and docs/ links resolve
    pattern = re.compile(r"shared/notes")
    roots = [PACKAGE, REPO / "README.md", REPO / "data_cards", REPO / "bench", REPO / "docs"]
    hits = []
    for root in roots:
        for path in ([root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []):
            if path.is_file() and path.suffix in {".py", ".md", ".toml", ".txt", ".html", ".j2", ".css", ".js"}:
                for n, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
                    if pattern.search(line):
                        hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, "references to design notes outside the repository (move them to docs/):\n  " + "\n  ".join(hits)


def test_docs_references_resolve():
    # every docs file that the package, README or cards mention exists
    pattern = re.compile(r"docs/([\w.-]+\.md)")
    roots = [PACKAGE, REPO / "README.md", REPO / "data_cards", REPO / "bench", REPO / "tests"]
    missing = []
    for root in roots:
        for path in ([root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []):
            if path.is_file() and path.suffix in {".py", ".md", ".toml"}:
                for name in pattern.findall(path.read_text("utf-8", errors="replace")):
                    if not (REPO / "docs" / name).is_file():
                        missing.append(f"{path.relative_to(REPO)} -> docs/{name}")
    assert not missing, "references to missing docs:\n  " + "\n  ".join(missing)
