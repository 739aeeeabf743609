"""The CLI sweeps of the variant pages (placement, train-only, examples per BN with Batch
Renorm) on a tiny slice of the bundled subset: each writes results.csv, summary.csv and
evals.csv with its arms, and what the runs measured is checked against what the arm means."""
import math

import pandas as pd
import pytest

from bnviz.cli import main
from bnviz.config import Config

# One epoch of a few steps on the bundled subset, one seed, nothing stored.
SMALL = ["--dataset", "subset", "--epochs", "1", "--seeds", "1", "--no-store"]


def _outputs(out):
    res = pd.read_csv(out / "results.csv")
    summary = pd.read_csv(out / "summary.csv")
    ev = pd.read_csv(out / "evals.csv")
    assert list(summary.arm) == list(res.arm)  # one configuration per arm with one seed
    assert (summary.n == 1).all() and (res.status == "finished").all(), res[["arm", "status"]]
    assert set(ev.arm) == set(res.arm) and set(ev.run_id) == set(res.run_id)
    return res, summary, ev


def test_placement_sweep_writes_its_four_arms_and_the_distributions(tmp_path, capsys):
    out = tmp_path / "placement"
    assert main(["sweep", "placement", *SMALL, "--train-size", "128", "--batch-size", "64",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    res, summary, ev = _outputs(out)
    assert list(res.arm) == ["before_sigmoid", "after_sigmoid", "before_relu", "after_relu"]
    assert list(res.norm_position) == ["before_act", "after_act"] * 2
    assert list(res.activation) == ["sigmoid"] * 2 + ["relu"] * 2
    # the reading compares after with before per activation, quoting the CSV's numbers
    for act in ("sigmoid", "relu"):
        acc = dict(zip(res.arm, res.test_acc_precise))
        line = next(s for s in said.splitlines() if "test accuracy (PreciseBN)" in s
                    and f"BN after the {act}" in s)
        assert f"{acc[f'after_{act}']:.3f}" in line and f"{acc[f'before_{act}']:.3f}" in line
    for r in ev.itertuples():
        row = r._asdict()
        for site in ("conv1", "conv2", "fc1", "fc2"):
            ps = [row[f"act_{site}_act_out_p{q}"] for q in (5, 25, 50, 75, 95)]
            assert ps == sorted(ps)
            sat = row[f"act_{site}_act_out_sat"]
            assert 0.0 <= sat <= 1.0
            if r.arm.endswith("relu"):
                assert ps[0] >= 0.0 and sat > 0.0  # ReLU: nothing below 0, some exactly 0
            else:
                assert 0.0 <= ps[0] and ps[-1] <= 1.0  # sigmoid: within [0, 1] (float32)
            if r.arm.startswith("before"):
                # BN's output on the training batch: per-channel variance gamma² ≈ 1 after a
                # couple of steps, per-channel means beta (near 0, and near each other)
                assert 0.7 < row[f"act_{site}_act_in_chvar"] < 1.3, (r.arm, site)
                assert abs(row[f"act_{site}_act_in_chmean"]) < 0.2, (r.arm, site)


def test_train_only_sweep_keeps_every_weight_at_its_initialisation_but_gamma_beta(tmp_path,
                                                                                   capsys):
    from bnviz.dashboard.weights import initial_norms
    from bnviz.optim import trained_count
    out = tmp_path / "train_only"
    assert main(["sweep", "train_only", *SMALL, "--train-size", "128", "--batch-size", "64",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    res, summary, ev = _outputs(out)
    assert list(res.arm) == ["all", "bn_only", "random"]
    assert list(res.train_only) == ["all", "bn", "random"]
    assert "only gamma and beta" in said and "as many random weights" in said
    base = Config(dataset="subset", train_size=128, batch_size=64, epochs=1,
                  track_weights=True, dropout_fc=False)
    w0 = initial_norms(base)  # the same seed: the same initial weights in every arm
    by = res.set_index("arm")
    for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        # only gamma and beta train: every conv/linear weight, fc3 included, is untouched
        assert by.loc["bn_only", f"final_wnorm_{layer}"] == pytest.approx(w0[layer],
                                                                          rel=1e-6), layer
        assert not math.isclose(by.loc["all", f"final_wnorm_{layer}"], w0[layer],
                                rel_tol=1e-4), layer
    # the random arm moves some weights: at least one layer's norm changed
    assert any(not math.isclose(by.loc["random", f"final_wnorm_{s}"], w0[s], rel_tol=1e-6)
               for s in ("conv1", "conv2", "fc1", "fc2", "fc3"))
    assert trained_count(base.replace(train_only="bn")) == 452
    assert trained_count(base.replace(train_only="random")) == 452
    assert 0.0 <= by.loc["bn_only", "final_gamma_off"] <= 1.0
    assert "final_gamma_off" in summary and "final_wnorm_fc3_ci" in summary
    assert (ev.groupby("arm").size() >= 1).all() and "wnorm_fc3" in ev


def test_norm_batch_sweep_with_batch_renorm_at_two_examples_per_bn(tmp_path, capsys,
                                                                   monkeypatch):
    """--norms bn,renorm --values 2,256: each norm at m = 2 (128 simulated devices of 2) and at
    m = 256 (one device), and the references. The train size (300) leaves a last PreciseBN
    batch of 44 examples: fewer than 2 per simulated device."""
    from bnviz import norms
    seen = []
    forward = norms.GhostBatchNorm.forward

    def spy(self, x):
        if self.training:
            seen.append((self.inner.norm_kind, self.slices, x.shape[0]))
        return forward(self, x)
    monkeypatch.setattr(norms.GhostBatchNorm, "forward", spy)
    out = tmp_path / "norm_batch"
    assert main(["sweep", "norm_batch", *SMALL, "--train-size", "300", "--norms", "bn,renorm",
                 "--values", "2,256", "--out", str(out)]) == 0
    capsys.readouterr()
    res, summary, ev = _outputs(out)
    assert list(res.arm) == ["bn@m2", "bn@m256", "renorm@m2", "renorm@m256", "group@ref",
                             "layer@ref"]
    by = res.set_index("arm")
    assert by.loc["renorm@m2", "norm"] == "renorm" and by.loc["renorm@m2", "devices"] == 128
    assert by.loc["bn@m2", "norm"] == "bn" and by.loc["bn@m2", "devices"] == 128
    assert (by.loc[["bn@m256", "renorm@m256", "group@ref", "layer@ref"], "devices"] == 1).all()
    assert "Batch Renorm, 2 per BN" in set(res.run)
    # the m = 2 runs really normalised 128 slices of the 256-example SGD batch
    assert ("bn", 128, 256) in seen and ("renorm", 128, 256) in seen
    assert all(s == 128 for _, s, _ in seen)  # no other arm is wrapped in ghost BN
    for arm in res.arm:  # every run evaluated, with a PreciseBN accuracy
        assert 0.0 <= by.loc[arm, "test_acc_precise"] <= 1.0, arm


def test_precise_bn_with_a_short_last_batch_on_many_devices():
    """The bug the sweep above found: PreciseBN forwards min(precise_samples, train size)
    training examples in batches of the SGD batch; a last one with fewer than 2 examples per
    simulated device made nn.BatchNorm1d refuse a slice of one, and the run failed at its
    first evaluation (training itself drops such a batch: bnviz.schedule.epoch_plan)."""
    from bnviz.runs.training import train_record
    from bnviz.evaluation import batches
    # 300 PreciseBN samples at batch 256 on 128 devices: 256 + 44, the 44 merged (as one
    # example over is merged at any batch size)
    assert [b.stop - b.start for b in batches(300, 256, 256)] == [300]
    assert [b.stop - b.start for b in batches(300, 256)] == [256, 44]
    assert [b.stop - b.start for b in batches(1000, 9)][-2:] == [9, 10]
    cfg = Config(dataset="subset", train_size=512, batch_size=256, devices=128, epochs=1,
                 device="cpu", precise_samples=300, compare_eval=True)
    v = train_record(cfg).view()
    assert v.status == "finished", v.summary.get("reason")
    assert 0.0 <= v.summary["test_acc_precise"] <= 1.0
    # the batch-statistics mode too: 1,000 test images at batch 256 leave 232 over, fewer
    # than 2 per device (it was NaN)
    assert 0.0 <= v.evals[-1]["by_mode"]["batch"] <= 1.0
