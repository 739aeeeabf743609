"""中文 and English: every string a learner reads goes through the catalogue (bnviz.i18n._).

The catalogue is checked four ways: (1) extraction from today's code finds no message without a
Chinese translation, and the shipped .po/.mo are today's extraction and its compilation;
(2) every translation keeps its message's {placeholders}; (3) no Streamlit call in the pages or
the dashboard helpers is handed a bare literal or f-string as text (it would bypass the
catalogue); (4) a walk over every page in `lang=zh` finds no English label where the catalogue
has a translation, and no exception. The glossary's key terms are used where their English is.
"""
from __future__ import annotations

import ast
import re
import string
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
i18n_tool = pytest.importorskip("i18n", reason="scripts/i18n.py needs Babel (the test extra)")

from bnviz import i18n  # noqa: E402
from bnviz.i18n import _, speaking  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")


def catalogue() -> dict[str, str]:
    return {m.id: m.string for m in i18n_tool.read(i18n_tool.PO) if m.id}


def fields(s: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(s) if f is not None}
    except ValueError:  # a literal brace in prose: compare the raw {...} groups
        return set(re.findall(r"\{[^{}]*\}", s))


def test_every_extracted_message_has_its_chinese_and_the_shipped_catalogue_is_current():
    extracted = {m.id for m in i18n_tool.extract() if m.id}
    assert len(extracted) > 500  # the pages, the dashboard, the readings, the registries
    po = catalogue()
    missing = sorted(extracted - {k for k, v in po.items() if v})
    assert not missing, f"{len(missing)} messages without Chinese (scripts/i18n.py update): " \
                        f"{missing[:10]}"
    stale = sorted(set(po) - extracted)
    assert not stale, f"catalogue entries no code uses any more: {stale[:10]}"
    assert i18n_tool.MO.read_bytes() == i18n_tool.compiled_bytes(), \
        "bnviz.mo is not the compilation of bnviz.po: run scripts/i18n.py update"


def test_translations_keep_placeholders_and_are_chinese():
    bad = {k: v for k, v in catalogue().items() if v and fields(k) != fields(v)}
    assert not bad, f"placeholders differ: {list(bad.items())[:5]}"
    # prose is translated, not copied: a message with three or more English words has CJK
    copied = [k for k, v in catalogue().items()
              if len(re.findall(r"\b[a-z]{3,}\b", k)) >= 3 and not CJK.search(v)]
    assert len(copied) <= 0.02 * len(catalogue()), copied[:10]


GLOSSARY = {  # English (in a message) -> the Chinese edition's term its translation must use
    "learning rate": "学习率", "minibatch": "小批量", "internal covariate shift": "内部协变量偏移",
    "test accuracy": "测试精度", "batch size": "批量大小", "weight decay": "权重衰减",
    "fine-tun": "微调", "running statistics": "移动平均",
}


def test_translations_use_the_glossarys_terms():
    bad = [(en, k) for k, v in catalogue().items() for en, zh in GLOSSARY.items()
           if en in k.lower() and v and zh not in v]
    assert len(bad) <= 0.05 * len(catalogue()), bad[:10]
    # 批量归一化 (the forum's and older printings' name) is mentioned, not used throughout
    older = [k for k, v in catalogue().items() if "批量归一化" in v]
    assert 1 <= len(older) <= 2, older


def test_the_translation_function_follows_the_language():
    msg = "Live lab"
    assert _(msg) == msg  # English outside a session: the CLI, the README, the core's tests
    with speaking("zh"):
        assert CJK.search(_(msg))
        assert i18n.language() == "zh"
    assert _(msg) == msg
    with speaking("xx"):  # an unknown language is English, never an error
        assert _(msg) == msg


# --- no bypass: Streamlit calls handed a literal ---------------------------------------------
TEXT_CALLS = {"title", "header", "subheader", "caption", "markdown", "write", "info", "warning",
              "error", "success", "text", "button", "toggle", "checkbox", "selectbox", "radio",
              "slider", "select_slider", "number_input", "text_input", "expander", "tabs",
              "metric", "page_link", "download_button", "segmented_control", "popover",
              "multiselect", "toast", "status", "spinner", "link_button", "form_submit_button"}
TEXT_KWARGS = {"label", "help", "title", "placeholder", "caption"}
NOT_UI = {"log", "logger", "logging", "warnings", "parser", "re", "os", "sys"}
OWN_TEXT = re.compile(r"[A-Za-z]{2,}")  # a literal with a word in it (not "—", "·", "")


def _bare(node) -> bool:
    """A literal with words in it, an f-string with words, or a concatenation holding one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(OWN_TEXT.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.Constant) and OWN_TEXT.search(str(v.value))
                   for v in node.values)
    if isinstance(node, ast.BinOp):
        return _bare(node.left) or _bare(node.right)
    return False


def bypasses(path: Path, root: Path = ROOT) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr not in TEXT_CALLS:
            continue
        if isinstance(node.func.value, ast.Name) and node.func.value.id in NOT_UI:
            continue
        args = list(node.args[:1]) + [k.value for k in node.keywords if k.arg in TEXT_KWARGS]
        if node.func.attr == "tabs" and node.args and isinstance(node.args[0], (ast.List,
                                                                                ast.Tuple)):
            args += node.args[0].elts
        for a in args:
            if _bare(a):
                out.append(f"{path.relative_to(root)}:{node.lineno} {node.func.attr}(…)")
    return out


def test_no_page_or_dashboard_helper_hands_streamlit_a_bare_string():
    files = [*sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py",
             *sorted((ROOT / "bnviz" / "dashboard").glob("*.py"))]
    found = [b for f in files for b in bypasses(f)]
    assert not found, "text bypassing the catalogue (wrap it in _()):\n" + "\n".join(found)


def test_the_bypass_check_catches_a_bare_label(tmp_path):
    f = tmp_path / "page.py"
    f.write_text('import streamlit as st\nst.title("Live lab")\nst.caption(f"{n} runs")\n'
                 'st.button(_("Train"), help="what it does")\nst.markdown(_("ok"))\n'
                 'st.caption("—")\n')
    assert [b.split(" ")[1] for b in bypasses(f, tmp_path)] == ["title(…)", "caption(…)",
                                                                "button(…)"]


# --- every page in Chinese ---------------------------------------------------------------------
def page_texts(at) -> list[str]:
    """The labels and texts an AppTest run shows (main area and sidebar)."""
    out = []
    for kind in ("title", "header", "subheader", "caption", "markdown", "info", "warning",
                 "error", "success"):
        out += [e.value for e in getattr(at, kind)]
    for kind in ("button", "toggle", "checkbox", "selectbox", "radio", "select_slider",
                 "slider", "number_input", "text_input", "multiselect"):
        for w in getattr(at, kind):
            out += [w.label] + ([w.help] if getattr(w, "help", None) else [])
    out += [e.label for e in at.expander] + [t.label for t in at.tabs]
    return [t for t in out if isinstance(t, str) and t]


@pytest.mark.slow
def test_every_page_in_chinese_shows_no_english_label_that_has_a_translation():
    from bnviz.library.catalog import PAGES
    from tests.apptest import open_page
    translated = {k: v for k, v in catalogue().items() if v and v != k}
    problems = []
    for page in PAGES:
        at = open_page(f"pages/{page.file}", {"lang": "zh"}, timeout=180)
        if at.exception:
            problems.append(f"{page.file}: exception {at.exception[0].message}")
            continue
        titles = [t.value for t in at.title]
        if not titles or not CJK.search(titles[0]):
            problems.append(f"{page.file}: title {titles[:1]} is not Chinese")
        english = sorted({t for t in page_texts(at) if t in translated})
        if english:
            problems.append(f"{page.file}: English where a translation exists: {english[:5]}")
    assert not problems, "\n".join(problems)


def test_chinese_bold_spans_do_not_end_in_punctuation():
    """CommonMark does not close `**…：**` before a CJK character (the closing ** is not
    right-flanking after punctuation), so the page would show the asterisks: punctuation at a
    bold span's edge goes outside it."""
    import unicodedata

    def edge_punct(inner: str) -> bool:
        return any(unicodedata.category(c).startswith("P") and c not in "`$(){}"
                   for c in (inner[:1], inner[-1:]) if c)
    bad = [v for v in catalogue().values() if v and CJK.search(v)
           and any(edge_punct(m) for m in re.findall(r"\*\*(.+?)\*\*", v))]
    assert not bad, bad[:5]
