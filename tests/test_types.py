"""The type check's configuration holds the house rule: mypy covers every module under spuriverse/ (the
Makefile's `test` target runs it beside pytest), and nothing of spuriverse is exempt from it; the only
exemptions are third-party packages that ship no type information, each listed by name."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]["mypy"]


def test_mypy_covers_the_whole_package_at_a_fixed_strictness():
    cfg = _config()
    assert cfg["files"] == ["spuriverse"]
    assert cfg["check_untyped_defs"] and cfg["disallow_incomplete_defs"] and cfg["warn_unused_ignores"]
    for blanket in ("ignore_missing_imports", "ignore_errors", "follow_imports", "exclude", "disable_error_code"):
        assert blanket not in cfg, f"[tool.mypy] {blanket} would exempt code of spuriverse"


def test_only_third_party_packages_are_exempt():
    for override in _config().get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert set(override) == {"module", "ignore_missing_imports"}, override
        assert not [m for m in modules if m.split(".")[0] == "spuriverse"], modules


def test_make_test_runs_the_type_check():
    makefile = (REPO / "Makefile").read_text("utf-8")
    target = re.search(r"^test:\n((?:\t.*\n)+)", makefile, re.M)
    assert target is not None and "-m mypy" in target.group(1) and "-m pytest" in target.group(1)
    assert "exit $$(( tests || types ))" in target.group(1)


def test_no_type_ignore_without_its_error_code():
    # a bare `# type: ignore` silences every error on its line; each ignore names its code (and its reason)
    bare = [f"{p.relative_to(REPO)}:{n}" for p in sorted((REPO / "spuriverse").rglob("*.py"))
            for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
            if re.search(r"#\s*type:\s*ignore(?!\[)", line)]
    assert not bare, bare
