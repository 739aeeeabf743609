"""A hosted server's cost cap (Limits.hosted(), bnviz.cost) on the variant pages' runs: Batch
Renorm, lite BN, two examples per BN (128 simulated devices) and gamma-and-beta-only training.
An expensive run of each is refused with its estimate in the message, a cheap one accepted."""
import pytest

from bnviz import cost
from bnviz.config import make_config, validate
from bnviz.runs.jobs import JobManager
from bnviz.runs.limits import JobRefused, Limits

FULL = (60000, 10000)  # the full Fashion-MNIST: what a hosted page's runs train on
VARIANTS = {
    "renorm": dict(norm="renorm"),
    "bn_mean": dict(norm="bn_mean"),
    "m2": dict(norm="bn", batch_size=256, devices=128),
    "train_only_bn": dict(norm="bn", train_only="bn", track_weights=True, dropout_fc=False),
}
# An evaluation every 2 steps over 10 epochs of the full set (235 steps each): 1,175, plus the
# 5 epoch ends at an odd step, each forwarding the test set (and the probe batch twice): well
# over the 2 min cap.
EXPENSIVE = dict(epochs=10, eval_every=2)
CHEAP = dict(epochs=3)


@pytest.mark.parametrize("name", VARIANTS)
def test_the_hosted_cap_refuses_an_expensive_variant_with_its_estimate(name):
    limits = Limits.hosted()
    cheap = make_config(dataset="full", **VARIANTS[name], **CHEAP)
    assert validate(cheap) == [] and limits.check(cheap, *FULL) == []
    assert cost.estimate(cheap, *FULL).seconds() <= limits.max_seconds
    heavy = make_config(dataset="full", **VARIANTS[name], **EXPENSIVE)
    assert validate(heavy) == []  # refused for its cost alone, not as an invalid config
    errs = limits.check(heavy, *FULL)
    assert len(errs) == 1, errs
    est = cost.estimate(heavy, *FULL)
    assert est.seconds() > limits.max_seconds
    # 60,000 = 234 × 256 + 96: 128 devices drop the last 96 (under 2 per device)
    spe = 234 if heavy.devices == 128 else 235
    odd_ends = sum(k * spe % 2 for k in range(1, 11))  # epoch ends off the every-2 grid
    assert est.train_steps == 10 * spe and est.eval_points == 10 * spe // 2 + odd_ends
    msg = errs[0]
    assert f"this run would take {cost.describe_seconds(est.seconds())} here" in msg
    assert f"{est.train_steps:,} training steps" in msg
    assert f"{est.eval_points:,} evaluations of {est.eval_examples:,}" in msg
    assert "this server allows 2 min per run" in msg and "set eval_every to 0" in msg


def test_a_hosted_job_manager_refuses_the_expensive_variants_before_queueing():
    m = JobManager(workers=1, limits=Limits.hosted())
    try:
        for name, knobs in VARIANTS.items():
            heavy = make_config(dataset="full", **knobs, **EXPENSIVE)
            est = cost.describe_seconds(cost.estimate(heavy, *FULL).seconds())
            with pytest.raises(JobRefused, match=f"would take {est} here"):
                m.submit(heavy, session=name)
        assert m.list_runs(limit=100) == []  # nothing was queued
    finally:
        m.shutdown()


def test_ghost_bn_on_128_devices_counts_the_same_examples_as_on_one():
    one = make_config(dataset="full", norm="bn", batch_size=256, devices=1, epochs=3)
    c1, c128 = cost.estimate(one, *FULL), cost.estimate(one.replace(devices=128), *FULL)
    # 60,000 = 234 × 256 + 96: one device keeps the last 96, 128 devices drop it (fewer than
    # 2 examples per device), as the trainer does (bnviz.schedule.epoch_plan)
    assert (c1.steps_per_epoch, c128.steps_per_epoch) == (235, 234)
    assert c1.train_examples == c128.train_examples == 3 * 60000
    assert c1.eval_examples == c128.eval_examples


def test_ghost_bn_on_128_devices_is_not_estimated_cheaper_than_on_one():
    one = make_config(dataset="full", norm="bn", batch_size=256, devices=1, epochs=3)
    c1, c128 = cost.estimate(one, *FULL), cost.estimate(one.replace(devices=128), *FULL)
    assert c128.seconds() >= 1.5 * c1.seconds()  # measured about 2.2x slower per example
