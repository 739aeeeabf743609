"""The message catalogues: extract, merge, compile, check (Babel's API; `pybabel` does the same).

    python scripts/i18n.py update          # extract every _()/N_() string into bnviz/locale/bnviz.pot,
                                           # merge it into zh/LC_MESSAGES/bnviz.po (keeping the
                                           # translations, taking new ones from locale/parts/*.po),
                                           # and compile bnviz.mo
    python scripts/i18n.py missing [FILE…] # the strings (of FILEs, or all) with no Chinese yet

bnviz/i18n.py says how the catalogue is used; bnviz/locale/glossary.md which terms it follows.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "bnviz" / "locale"
PO = LOCALE / "zh" / "LC_MESSAGES" / "bnviz.po"
MO = PO.with_suffix(".mo")
POT = LOCALE / "bnviz.pot"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def sources() -> list[Path]:
    """Every file with learner-visible text: the app, its pages, the dashboard helpers and the
    core modules whose texts the dashboard shows (readings, knobs, catalogue, errors)."""
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")),
             *sorted((ROOT / "bnviz").rglob("*.py"))]
    return [f for f in files if "_(" in f.read_text(encoding="utf-8")]


def extract(files: list[Path] | None = None) -> Catalog:
    cat = Catalog(project="bnviz", domain="bnviz")
    for f in files or sources():
        for lineno, msgid, comments, _ctx in extract_from_file(
                "python", str(f), keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)):
            if msgid:
                cat.add(msgid, None, [(str(f.relative_to(ROOT)), lineno)],
                        auto_comments=comments)
    return cat


def read(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale="zh_Hans_CN" if path != POT else None)


def known() -> dict:
    """msgid -> msgstr from the catalogue and every part file (the catalogue wins)."""
    out: dict = {}
    for part in sorted((LOCALE / "parts").glob("*.json")):  # {msgid: msgstr} from translators
        for k, v in json.loads(part.read_text(encoding="utf-8")).items():
            if v:
                out.setdefault(k, v)
    for part in sorted((LOCALE / "parts").glob("*.po")):
        for m in read(part):
            if m.id and m.string and not m.fuzzy:
                out.setdefault(m.id, m.string)
    if PO.exists():
        for m in read(PO):
            if m.id and m.string and not m.fuzzy:
                out[m.id] = m.string
    return out


def update() -> int:
    pot = extract()
    with POT.open("wb") as fh:
        write_po(fh, pot, omit_header=True, sort_output=True, width=100)
    have = known()
    zh = Catalog(locale="zh_Hans_CN", project="bnviz", domain="bnviz", fuzzy=False)
    for m in pot:
        if m.id:
            zh.add(m.id, have.get(m.id), m.locations, auto_comments=m.auto_comments)
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as fh:
        write_po(fh, zh, omit_header=False, sort_output=True, width=100, include_previous=False)
    with MO.open("wb") as fh:
        write_mo(fh, zh)
    missing = [m.id for m in zh if m.id and not m.string]
    print(f"i18n: {len(pot)} messages, {len(missing)} without Chinese; wrote {PO.relative_to(ROOT)}"
          f" and {MO.name}")
    return 0


def missing(files: list[Path] | None = None) -> list:
    have = known()
    return [m.id for m in extract(files) if m.id and not have.get(m.id)]


def compiled_bytes() -> bytes:
    """What `update` would write as the .mo from today's .po (a test compares it with the file)."""
    buf = io.BytesIO()
    write_mo(buf, read(PO))
    return buf.getvalue()


if __name__ == "__main__":
    cmd, *args = sys.argv[1:] or ["update"]
    if cmd == "update":
        sys.exit(update())
    if cmd == "missing":
        ids = missing([Path(a).resolve() for a in args] or None)
        for i in ids:
            print(repr(i))
        print(f"{len(ids)} without Chinese", file=sys.stderr)
        sys.exit(1 if ids else 0)
    sys.exit(f"unknown command {cmd!r}: update | missing [FILE…]")
