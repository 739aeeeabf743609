"""The fine-tuning page: renders its question, and a tiny grid run here reads out."""
from tests.apptest import button, open_page, wait_until_idle

TINY = {"dataset": "subset", "train_size": "256", "batch_size": "64", "epochs": "1",
        "finetune_epochs": "1", "snapshot_every": "1", "seeds": "2"}


def texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "text")
                     for e in getattr(at, kind))


def test_page_renders_a_mangled_link_with_its_controls():
    at = open_page("finetune", {"finetune_bn": "sideways", "finetune_shift": "classes"})
    assert not at.exception, at.exception
    assert any("finetune_bn" in t.value for t in at.text)  # the ignored setting, named
    shown = texts(at)
    assert "classes 0–4" in shown and "eval mode" in shown


def test_a_tiny_grid_trained_here_shows_the_drift_and_the_reading():
    at = open_page("finetune", TINY)
    assert not at.exception, at.exception
    button(at, "▶ Run the experiment").click().run()
    wait_until_idle(6, 120)
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "What these runs show" in [s.value for s in at.subheader]
    assert "running standard deviations" in shown and "exactly 0" in shown
    assert len(at.get("plotly_chart")) >= 3  # the grid's bars, the drift, both parts
    table = next(d.value for d in at.dataframe if "layer" in d.value.columns.names
                 or "conv1" in d.value.columns)
    assert (table.drop(index=[i for i in table.index if "updating" in i]) == 0).all().all()
