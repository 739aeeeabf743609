"""The page and question catalog (bnviz/library/catalog.py) is the one list: the menu, the About
page's table and the pages' state keys read it, and every page in it opens."""
import re

import pytest

from bnviz.library.catalog import PAGE, PAGES, QUESTIONS, page_settings, questions_of
from tests.apptest import open_page
from tests.conftest import ROOT


def test_every_page_file_exists_and_every_file_is_a_page():
    files = {p.name for p in (ROOT / "pages").glob("*.py")}
    assert {p.file for p in PAGES} == files
    assert len({p.id for p in PAGES}) == len(PAGES)


def test_every_question_names_a_page_and_grid_pages_use_their_page_id():
    for q in QUESTIONS:
        assert q.page in PAGE and q in questions_of(q.page)
        assert q.heading and q.cli, q.key
    # a page's state key is its catalog id: grid_controls(..., id) / page="id"
    for page in PAGES:
        if not questions_of(page.id) or page.id == "lab":
            continue
        text = (ROOT / "pages" / page.file).read_text()
        keys = set(re.findall(r'grid_controls\([^)]*\),\s*"?([\w-]+)"?\)', text)) | set(
            re.findall(r'page="([\w-]+)"', text)) | set(re.findall(r'PAGE = "([\w-]+)"', text))
        assert keys <= {page.id, "PAGE"} and keys, (page.file, keys)
    with pytest.raises(KeyError, match="unknown page 'batch'"):
        page_settings("batch")


def test_the_menu_is_the_catalog():
    at = open_page(None)
    assert not at.exception, at.exception
    # About's table: one row per page that says what it answers, in the catalog's order
    table = next(m.value for m in at.markdown if m.value.startswith("| page |"))
    titles = re.findall(r"^\| \*\*(.+?)\*\* \|", table, re.M)
    assert titles == [p.title for p in PAGES if p.answers]
    assert "226 parameters fewer" in table  # computed from the default config


@pytest.mark.parametrize("page", [p for p in PAGES if p.id], ids=lambda p: p.id)
def test_every_catalog_page_opens_without_an_error(page):
    at = open_page(f"pages/{page.file}", {"dataset": "subset"})
    assert not at.exception, (page.file, at.exception)
    assert at.title and at.title[0].value
