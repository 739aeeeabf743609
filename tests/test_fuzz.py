"""Fuzzing what strangers can send: share-link parameters and widget values.

The parser gets thousands of cases (it is fast); the page itself, through AppTest, gets a
hundred or so (each run costs ~0.2-0.5 s). A real browser cannot send NaN or inf for an int
number_input, and Streamlit's own deserializer raises on them before the page runs, so the
widget cases stay finite.
"""
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnviz.config import KNOB, KNOBS, from_query, parse_config, shown, to_query, validate
from tests.apptest import open_page

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # URL-encodable
NUMBERS = st.one_of(st.integers(-10**400, 10**400), st.floats(allow_nan=True, allow_infinity=True))
NUMBER_TEXT = st.one_of(st.integers(-10**400, 10**400), st.floats()).map(str) | st.sampled_from(
    ["NaN", "-inf", "1e999", "0x10", "1_000", " 3 ", "", "true", "None", "[1]", "9" * 5000])
VALID = st.sampled_from([v for k in KNOBS for v in (k.choices or ())]).map(str)
RAW = st.one_of(TEXT, NUMBER_TEXT, VALID)
KEYS = st.sampled_from([k.name for k in KNOBS]) | TEXT
URL_VALUE = st.one_of(RAW, st.lists(RAW, min_size=1, max_size=3))  # lists = repeated keys
ANY_VALUE = st.one_of(URL_VALUE, NUMBERS, st.booleans(), st.none(),
                      st.lists(NUMBERS | st.booleans(), max_size=2), st.dictionaries(TEXT, TEXT))


def last(raw):
    return raw[-1] if isinstance(raw, (list, tuple)) else raw


def assert_used_or_warned(values, cfg, warnings):
    assert validate(cfg) == [], (values, cfg)
    for key, raw in values.items():
        if isinstance(raw, (list, tuple)) and not raw:
            continue  # `?x` with no value at all: nothing to use, nothing to warn about
        said = any(key in w or shown(key) in w for w in warnings)
        if key not in KNOB:
            assert said, f"unknown key {key!r} ignored silently"
            continue
        try:
            wanted = KNOB[key].parse(last(raw))
        except (ValueError, OverflowError):
            wanted = None
        assert said or getattr(cfg, key) == wanted, (key, raw, getattr(cfg, key), warnings)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, ANY_VALUE, max_size=8))
def test_parse_config_never_raises_and_names_what_it_ignored(values):
    cfg, warnings = parse_config(values)
    assert_used_or_warned(values, cfg, warnings)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(KEYS, URL_VALUE, max_size=8))
def test_share_link_parameters(params):
    cfg, warnings = from_query(params, ignore=("run",))
    assert_used_or_warned({k: v for k, v in params.items() if k != "run"}, cfg, warnings)


def test_numbers_too_long_to_print_are_refused_by_name():
    # hypothesis cannot even print an int past 4300 digits, so these are spelled out
    for key in ("eps", "epochs", "norm", "bias"):
        for raw in (10**5000, -10**5000, "9" * 5000, 2**63):
            cfg, warnings = parse_config({key: raw})
            assert len(warnings) == 1 and warnings[0].startswith(key), warnings
            assert len(warnings[0]) < 200 and validate(cfg) == []


def knob_value(k):
    if k.choices is not None:
        return st.sampled_from(k.choices)
    if k.type is bool:
        return st.booleans()
    if k.type is int:
        return st.integers(int(k.lo), int(k.hi))
    return st.floats(k.lo, k.hi, allow_nan=False).filter(lambda v: not k.log or v > 0)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries({k.name: knob_value(k) for k in KNOBS}))
def test_every_valid_config_survives_its_share_link(values):
    cfg, warnings = parse_config(values)
    if warnings:  # cross-field rules (devices <= batch_size, ...) reset a few knobs
        assert all("using the defaults" in w for w in warnings)
    back, again = from_query(to_query(cfg))
    assert back == cfg and again == []


# -- the page itself -----------------------------------------------------------------------
PAGE_KEYS = st.sampled_from([k.name for k in KNOBS if k.name != "dataset"] + ["view", "runs"]) \
    | TEXT.filter(lambda s: s != "run")  # `run` is tested apart: a valid id starts training


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(PAGE_KEYS, URL_VALUE, min_size=1, max_size=6))
def test_lab_page_with_random_links_never_shows_an_exception(params):
    at = open_page("lab", params)
    assert not at.exception, (params, at.exception[0].message)
    _, warnings = from_query(params, ignore=("run", "runs", "view", "seeds"))
    if warnings:  # whatever the parser ignored, the page says so
        assert at.warning and "ignored" in at.warning[0].value


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(TEXT.filter(lambda s: s not in ("",)))
def test_lab_page_with_a_mangled_run_id(run):
    at = open_page("lab", {"run": run, "dataset": "subset"})
    assert not at.exception
    if not re.fullmatch(r"[0-9a-f]{12}", run):  # 12 characters that are not an id, too
        assert any("ignored" in w.value for w in at.warning)
        assert any("not valid" in t.value for t in at.text)  # quoted as text, not Markdown


FINITE = st.one_of(st.integers(-10**12, 10**12), st.floats(-1e300, 1e300, allow_nan=False))


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 100), FINITE), min_size=1, max_size=4))
def test_lab_page_widgets_with_out_of_range_numbers(edits):
    at = open_page("lab", {"dataset": "subset"})
    inputs = list(at.number_input)
    for i, value in edits:
        w = inputs[i % len(inputs)]
        w.set_value(int(value) if isinstance(w.value, int) else float(value))
    at.run()
    assert not at.exception, (edits, at.exception[0].message)
    cfg, _ = parse_config({k.name: at.session_state[f"knob_{k.name}"] for k in KNOBS
                           if f"knob_{k.name}" in at.session_state})
    assert validate(cfg) == []  # whatever arrived, the page trains only a valid config
