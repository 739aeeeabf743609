"""The batch-size page: the normalisation batch at a fixed SGD batch, the SGD batch as a
separate question, and batch sizes 1 and 2."""
from bnviz.experiments import DEFAULT_SEEDS
from tests.apptest import open_page

NORM_TITLE = "Examples per BN (the normalisation batch) at SGD batch 256"
SGD_TITLE = "SGD batch size (examples per step), at a fixed number of examples seen"


def batch_page(params=None):
    return open_page("batch_size", {"dataset": "subset", **(params or {})})


def page_text(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_page_separates_the_normalisation_batch_from_the_sgd_batch():
    at = batch_page()
    assert not at.exception, at.exception
    headers = [h.value for h in at.header]
    assert NORM_TITLE in headers and SGD_TITLE in headers
    assert headers.index(NORM_TITLE) < headers.index(SGD_TITLE)
    assert any(n.label == "Seeds per configuration" and n.value == DEFAULT_SEEDS == 5
               for n in at.number_input)
    text = page_text(at)
    assert "steps with **256 examples**" in text and "the SGD batch (256)" in text
    assert "**1 for every normalisation**" in text  # the same (base) lr for every norm
    assert "**2 groups**" in text and "**1 group**" in text
    assert "**2 epochs**" in text  # the page's epochs default, stated
    assert next(n for n in at.number_input if n.label == "Epochs").value == 2
    per_bn = next(m for m in at.multiselect if m.label == "Examples per BN (m)")
    assert per_bn.value == [2, 4, 16, 64, 256]  # down to Wu & He's 2 per GPU
    assert "**Batch Renorm** (Ioffe 2017" in text and "over the first 500 steps" in text
    labels = [b.label for b in at.button]
    assert "▶ Run the normalisation-batch sweep" in labels
    assert "▶ Run the SGD-batch sweep" in labels and "▶ Run the batch-1 runs" in labels
    # N = 2: the caption quotes the measured values
    assert any("x̂₁ = −x̂₂ for all 120 units" in c.value for c in at.caption)


def test_link_settings_win_over_the_page_defaults():
    at = batch_page({"epochs": "3", "lr": "0.5", "seeds": "2"})
    assert not at.exception, at.exception
    text = page_text(at)
    assert "**3 epochs**" in text and "**0.5 for every normalisation**" in text
    assert next(n for n in at.number_input if n.label == "Seeds per configuration").value == 2


def test_a_train_set_smaller_than_the_sgd_batch_is_explained():
    at = batch_page({"train_size": "128", "batch_size": "64"})
    assert not at.exception, at.exception
    assert any("train_size (128) must be at least batch_size (256)" in e.value
               for e in at.error)
    assert "▶ Run the normalisation-batch sweep" not in [b.label for b in at.button]
