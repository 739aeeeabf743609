import dataclasses
import math

import pytest
from hypothesis import given, settings, strategies as st

from bnviz.config import (KNOB, KNOBS, PRESETS, Config, ConfigError, from_query, knob,
                          make_config, parse_config, to_query, validate)


def test_defaults_are_valid_and_presets_build():
    assert validate(Config()) == []
    for name in PRESETS:
        assert validate(make_config(name)) == []
    assert make_config("d2l-lenet").lr == 0.9 and make_config("d2l-lenet").norm == "none"


def test_bad_values_give_one_clear_message_each():
    with pytest.raises(ConfigError) as e:
        make_config(batch_size=0, lr="fast", norm="weird", epochs=2.5, unknown=1)
    msgs = e.value.errors
    assert "batch_size must be between 1 and 4096, got 0" in msgs
    assert any(m.startswith("lr must be a number") for m in msgs)
    assert any(m.startswith("norm must be one of") for m in msgs)
    assert any(m.startswith("epochs must be a whole number") for m in msgs)
    assert "unknown setting 'unknown'" in msgs
    assert len(msgs) == 5


def test_cross_field_check():
    with pytest.raises(ConfigError, match="devices"):
        make_config(batch_size=4, devices=8)


def test_config_id_is_stable_and_ignores_seed_and_device():
    a = make_config(seed=1, device="cpu")
    b = make_config(seed=2, device="auto")
    assert a.config_id() == b.config_id() == Config().config_id()
    assert make_config(lr=0.5).config_id() != a.config_id()


def test_config_id_values_are_pinned():
    """The ids in every run store depend on these values: a change to the hashing must come
    with a store migration that re-keys stored runs (bnviz.runs.store.rekey_config_ids).
    The default config hashes only its non-default settings, none: sha1("{}")[:12].
    (Before the run store's schema version 2 every knob was hashed: the default was
    'c18136ebb6bd'.)"""
    assert Config().config_id() == "bf21a9e8fbc5"
    assert make_config(seed=7, device="cpu").config_id() == "bf21a9e8fbc5"
    assert make_config(lr=0.5).config_id() == "477839235f4a"  # sha1('{"lr":0.5}')
    assert make_config(norm="none", batch_size=64).config_id() == "a8d4b243ad05"


def test_config_id_hashes_only_non_default_knobs():
    a = make_config(lr=0.5)
    assert a.config_id() == make_config(lr=0.5, eps=Config.eps, norm="bn").config_id()
    assert make_config(lr=1).config_id() == Config().config_id()  # 1 == 1.0, the default


def with_new_knob(default):
    """Config as it would be after someone adds one knob (with a default) to it."""
    return dataclasses.make_dataclass(
        "ConfigPlusKnob", [("new_knob", int, knob(default, "a knob added later", lo=0, hi=9))],
        bases=(Config,), frozen=True)


@pytest.mark.parametrize("overrides", [{}, {"lr": 0.5}, {"norm": "none", "batch_size": 64},
                                       {"dataset": "subset", "train_size": 256, "epochs": 1,
                                        "seed": 3, "device": "cpu"},
                                       {"eval_mode": "precise", "norm_fc2": False}])
def test_adding_a_knob_with_a_default_keeps_every_id(overrides):
    Later = with_new_knob(3)
    old = make_config(**overrides)
    later = Later(**old.to_dict())  # the same settings, the new knob at its default
    assert later.new_knob == 3 and later.config_id() == old.config_id()
    # setting the new knob away from its default does make a new experiment
    assert dataclasses.replace(later, new_knob=4).config_id() != old.config_id()


def test_lenient_parse_keeps_defaults_and_says_why():
    cfg, warnings = parse_config({"batch_size": "1e9", "lr": ["0.1", "0.2"], "foo": "x",
                                  "eval_mode": "precise", "norm_fc1": "maybe"})
    assert cfg.batch_size == Config.batch_size and cfg.lr == 0.2
    assert cfg.eval_mode == "precise" and cfg.norm_fc1 is True
    assert len(warnings) == 3 and any("foo" in w for w in warnings)


def knob_values(k):
    if k.choices:
        return st.sampled_from(k.choices)
    if k.type is bool:
        return st.booleans()
    if k.type is int:
        return st.integers(int(k.lo), int(k.hi))
    return st.floats(k.lo, k.hi, allow_nan=False)


configs = st.fixed_dictionaries({k.name: knob_values(k) for k in KNOBS}).map(
    lambda d: Config(**d)).filter(lambda c: validate(c) == [])


@pytest.mark.slow  # hypothesis, 100 configs (drawing ~50 knobs each is the cost, not the check)
@settings(max_examples=100, deadline=None)
@given(configs)
def test_url_round_trip_is_identity(cfg):
    q = to_query(cfg)
    assert all(isinstance(v, str) for v in q.values())
    back, warnings = from_query(q)
    assert warnings == [] and back == cfg


def test_query_holds_only_non_defaults():
    assert to_query(Config()) == {}
    assert to_query(make_config(batch_size=4, norm_fc2=False)) == {"batch_size": "4",
                                                                   "norm_fc2": "false"}


def test_every_knob_has_help_and_a_valid_default():
    for k in KNOBS:
        assert k.help and k.check(k.default) is None
    assert KNOB["batch_size"].lo == 1 and KNOB["batch_size"].hi >= 1024
    assert not math.isnan(Config().lr)
