"""The lab's one-line reading says what the run's numbers show, and only that."""
from bnviz.config import make_config
from bnviz.events import RunEnded
from bnviz.readings import one_run as describe
from bnviz.runs.record import RunRecord


def view(cfg=None, **summary):
    rec = RunRecord("r", cfg or make_config())
    rec(RunEnded("finished", "", {"examples_per_sec": 1000.0, **summary}))
    return rec.view()


def test_the_gap_is_split_into_running_statistics_and_the_rest():
    text = describe(view(train_acc=0.902, test_acc=0.852, test_acc_running=0.852,
                         test_acc_precise=0.882))
    assert "0.882" in text and "+0.030 of the gap comes from the running statistics" in text
    assert "+0.020" in text and "overfits" not in text
    assert "fits the training set clearly better" not in text


def test_chance_level_gets_one_reading_only():
    text = describe(view(train_acc=0.10, test_acc=0.10, test_acc_running=0.10,
                         test_acc_precise=0.10))
    assert text.endswith("That is chance level on both: the network did not learn.")
    assert "PreciseBN" not in text
    assert "better than unseen data" not in text


def test_eval_mode_failure_is_named_when_training_learned():
    text = describe(view(train_acc=0.85, test_acc=0.10, test_acc_running=0.10,
                         test_acc_precise=0.84))
    assert "fails in eval mode" in text and "+0.740 of the gap" in text
