"""Test-time statistics: every mode gives a number for every batch size, and the summary
carries running and PreciseBN accuracy side by side."""
import math

import pytest

from bnviz.config import make_config
from bnviz.evaluation import batches, evaluate
from bnviz.model import build_lenet
from bnviz import data as data_mod
from bnviz.runs.record import RunRecord
from bnviz.trainer import Trainer


def test_batches_never_leave_a_batch_of_one():
    assert [b.stop - b.start for b in batches(1000, 9)][-2:] == [9, 10]  # 1000 = 111·9 + 1
    assert [b.stop - b.start for b in batches(10, 5)] == [5, 5]
    assert [b.stop - b.start for b in batches(1, 9)] == [1]
    assert sum(b.stop - b.start for b in batches(1000, 9)) == 1000


@pytest.mark.slow
def test_batch_statistics_eval_is_defined_when_one_test_image_is_left_over():
    ds = data_mod.load("subset", 0, "cpu", 0)
    assert len(ds.test_y) % 9 == 1  # the subset's 1,000 test images at batch 9
    net = build_lenet(make_config(batch_size=9))
    for how in ("running", "batch", "precise"):
        loss, acc = evaluate(net, ds.test_x, ds.test_y, how, batch_size=9, train_x=ds.train_x,
                             precise_samples=4096)  # 4096 = 455·9 + 1 too
        assert math.isfinite(loss) and 0 <= acc <= 1, how


@pytest.mark.slow
def test_summary_reports_running_and_precise_accuracy(tiny):
    rec = RunRecord("e", make_config(**tiny))
    s = Trainer(rec.config, [rec]).run()
    assert s["test_acc_running"] == s["test_acc"]  # eval_mode running
    assert 0 <= s["test_acc_precise"] <= 1 and s["test_acc_precise"] != s["test_acc_running"]
    s2 = Trainer(make_config(**tiny, norm="group")).run()
    assert s2["test_acc_precise"] == s2["test_acc_running"] == s2["test_acc"]
