"""The tree's import contract, checked on the source (every import, also inside functions):

- the learner's core (bnviz/*.py) imports neither streamlit, plotly nor pandas, nor the run
  machinery (bnviz.runs), the dashboard (bnviz.dashboard) or the speed code (bnviz.speed);
- the speed code is optional and plugged in from outside: it may use the core, nothing above;
- the run machinery and the results library know nothing of the dashboard or of
  streamlit/plotly;
- pages and app.py use the dashboard helpers and the core; of the run machinery only the
  result tables (bnviz.runs.results), never the store or the job manager directly.
"""
import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

UI_LIBS = ("streamlit", "plotly")


def imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved inside bnviz)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def banned(found: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in found if any(m == p or m.startswith(p + ".") for p in prefixes))


CORE = sorted(p for p in (ROOT / "bnviz").glob("*.py") if p.name not in ("cli.py", "__main__.py"))


def test_the_tree_has_the_four_rooms():
    assert {p.name for p in (ROOT / "bnviz").iterdir() if p.is_dir() and
            not p.name.startswith("__")} == {"runs", "dashboard", "speed", "datasets",
                                                "library"}
    assert len(CORE) >= 10 and (ROOT / "bnviz" / "model.py") in CORE


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_no_ui_no_pandas_no_machinery(path):
    assert banned(imports(path), UI_LIBS + ("pandas", "bnviz.runs", "bnviz.dashboard",
                                            "bnviz.speed")) == []


@pytest.mark.parametrize("path", sorted((ROOT / "bnviz" / "speed").glob("*.py")),
                         ids=lambda p: p.name)
def test_speed_code_uses_only_the_core(path):
    assert banned(imports(path), UI_LIBS + ("pandas", "bnviz.runs", "bnviz.dashboard")) == []


@pytest.mark.parametrize("path", sorted((ROOT / "bnviz" / "runs").glob("*.py")),
                         ids=lambda p: p.name)
def test_run_machinery_knows_no_dashboard(path):
    assert banned(imports(path), UI_LIBS + ("bnviz.dashboard",)) == []


@pytest.mark.parametrize("path", sorted((ROOT / "bnviz" / "library").glob("*.py")),
                         ids=lambda p: p.name)
def test_results_library_knows_no_dashboard(path):
    """The library is runs in a store: the core and the run machinery, no UI."""
    assert banned(imports(path), UI_LIBS + ("bnviz.dashboard",)) == []


def test_cli_imports_no_dashboard():
    assert banned(imports(ROOT / "bnviz" / "cli.py"), UI_LIBS + ("bnviz.dashboard",)) == []


@pytest.mark.parametrize("path", sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"],
                         ids=lambda p: p.name)
def test_pages_never_reach_the_store_or_the_jobs(path):
    found = {m for m in imports(path) if m.startswith("bnviz.runs")}
    assert found <= {"bnviz.runs", "bnviz.runs.results"} | {
        m for m in found if m.startswith("bnviz.runs.results.")}, found


def test_the_contract_check_itself_catches_a_violation(tmp_path):
    bad = ROOT / "bnviz" / "_contract_probe.py"
    bad.write_text("def f():\n    import streamlit as st\n    from .runs import store\n")
    try:
        assert banned(imports(bad), UI_LIBS + ("bnviz.runs",)) == ["bnviz.runs",
                                                                    "bnviz.runs.store",
                                                                    "streamlit"]
    finally:
        bad.unlink()
