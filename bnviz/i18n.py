"""The one function every learner-visible string goes through: `_("…")`.

Standard gettext: the English text is the message id; the Chinese lives in
bnviz/locale/zh/LC_MESSAGES/bnviz.po (extracted and compiled with Babel by scripts/i18n.py;
the compiled .mo ships beside it), with bnviz/locale/glossary.md saying which Chinese term the
catalogue uses for each BN word (the Chinese edition's terms).

Which language a call speaks is asked of a resolver, so this module stays free of Streamlit:
the CLI, the findings script and the core's tests get English (the default); the dashboard
installs a resolver that reads the visitor's session (bnviz.dashboard.lang), so two visitors of
one server each read their own language. `speaking(lang)` overrides it for a block (tests, an
exported figure).

Strings defined at import time (knob labels, page titles) are marked with `N_` and translated
where they are shown: `_(KNOB.label)`. Readings computed in the core are data; the functions that
turn them into sentences call `_()` on their templates and format the numbers the same way in
both languages.
"""
from __future__ import annotations

import contextvars
import gettext
from functools import lru_cache
from pathlib import Path
from typing import Callable

DOMAIN = "bnviz"
LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = {"en": "English", "zh": "中文"}  # code -> how the language picker names it
DEFAULT = "en"

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("bnviz_lang", default=None)
_resolver: Callable[[], str] = lambda: DEFAULT  # noqa: E731


def set_resolver(fn: Callable[[], str]) -> None:
    """Where `language()` asks when no `speaking()` block is active (the dashboard's session)."""
    global _resolver
    _resolver = fn


def language() -> str:
    lang = _forced.get()
    if lang is None:
        try:
            lang = _resolver()
        except Exception:  # a resolver outside its context (a worker thread): English
            lang = DEFAULT
    return lang if lang in LANGUAGES else DEFAULT


class speaking:
    """`with speaking("zh"): …` translates every `_()` in the block into that language."""

    def __init__(self, lang: str):
        self.lang = lang

    def __enter__(self):
        self._token = _forced.set(self.lang)
        return self

    def __exit__(self, *exc):
        _forced.reset(self._token)


@lru_cache(maxsize=None)
def translations(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def _(message: str) -> str:
    """`message` in the current language (itself where the catalogue has no entry)."""
    if not message:
        return message
    return translations(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a string for extraction without translating it now (module-level tables)."""
    return message


def is_zh() -> bool:
    return language() == "zh"
