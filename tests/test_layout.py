"""The tree's import contract, checked on the source (every import, also inside functions):

- the learner's core (bnviz/*.py and bnviz/readings/) imports neither streamlit, plotly nor
  pandas, nor the run machinery (bnviz.runs), the dashboard (bnviz.dashboard) or the speed
  code (bnviz.speed);
- the speed code is optional and plugged in from outside: it may use the core, nothing above;
- the run machinery and the results library know nothing of the dashboard or of
  streamlit/plotly;
- pages and app.py use the dashboard helpers and the core; of the run machinery only the
  result tables (bnviz.runs.results), never the store or the job manager directly: they import
  neither, and neither they nor the dashboard helpers reach them through the runner they are
  given (no `.store` but to ask whether there is one, no private attribute such as
  `mgr._jobs`: the Runner's methods are the whole interface).
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


# The core: bnviz/*.py and its one subpackage, bnviz/readings (what each question's runs say).
CORE = sorted([*(p for p in (ROOT / "bnviz").glob("*.py")
                 if p.name not in ("cli.py", "__main__.py")),
               *(ROOT / "bnviz" / "readings").glob("*.py")])


def test_the_tree_has_the_four_rooms():
    assert {p.name for p in (ROOT / "bnviz").iterdir() if p.is_dir() and
            not p.name.startswith("__")} == {"runs", "dashboard", "speed", "datasets",
                                                "library", "locale", "readings"}
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


def reaches_inside(source: str, filename: str = "<page>") -> list[str]:
    """Where a page reaches past the Runner's methods: `.store` used for anything but
    `... is None` / `is not None`, a private attribute (`._jobs`, `._queue`, `._safe`, ...) of
    anything but a module this file imports, or the same through getattr/setattr/hasattr.
    Returns "line: what" for each."""
    tree = ast.parse(source, filename)
    modules = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
               if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    presence = set()  # `x.store is None`: asking whether there is a store is allowed
    for n in ast.walk(tree):
        if isinstance(n, ast.Compare) and isinstance(n.left, ast.Attribute) and \
                n.left.attr == "store" and all(isinstance(o, (ast.Is, ast.IsNot))
                                               for o in n.ops) and \
                all(isinstance(c, ast.Constant) and c.value is None for c in n.comparators):
            presence.add(id(n.left))

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute):
            of_module = isinstance(n.value, ast.Name) and n.value.id in modules
            if n.attr == "store" and id(n) not in presence:
                out.append(f"{n.lineno}: .store")
            elif private(n.attr) and not of_module:
                out.append(f"{n.lineno}: .{n.attr}")
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and \
                n.func.id in ("getattr", "setattr", "hasattr") and len(n.args) >= 2 and \
                isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str) and \
                (n.args[1].value == "store" or private(n.args[1].value)):
            out.append(f"{n.lineno}: {n.func.id}(..., {n.args[1].value!r})")
    return sorted(out, key=lambda s: int(s.split(":")[0]))


@pytest.mark.parametrize("path", sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"] +
                         sorted((ROOT / "bnviz" / "dashboard").glob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_use_the_runner_only_through_its_methods(path):
    assert reaches_inside(path.read_text(), str(path)) == []


def test_the_runner_check_itself_catches_reaching_inside():
    page = """
import streamlit as st
from bnviz.dashboard import charts, ui
mgr = ui.manager()
if mgr.store is None or mgr.store is not None:
    st.warning("no store")
runs = mgr.store.list_runs(limit=5)
n = len(mgr._jobs)
ui.manager()._queue.clear()
lib = mgr.library.store
getattr(mgr, "_cv")
fill = charts._rgba("red", 0.1)
"""
    assert reaches_inside(page) == ["7: .store", "8: ._jobs", "9: ._queue", "10: .store",
                                    "11: getattr(..., '_cv')"]


def test_the_contract_check_itself_catches_a_violation(tmp_path):
    bad = ROOT / "bnviz" / "_contract_probe.py"
    bad.write_text("def f():\n    import streamlit as st\n    from .runs import store\n")
    try:
        assert banned(imports(bad), UI_LIBS + ("bnviz.runs",)) == ["bnviz.runs",
                                                                    "bnviz.runs.store",
                                                                    "streamlit"]
    finally:
        bad.unlink()
