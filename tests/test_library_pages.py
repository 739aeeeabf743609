"""Question pages open with the results library's answer; another question has none yet; a
run trained here is shown beside the library's; compare lists library runs."""
import pytest

from bnviz.library import LIBRARY_FILE, Library
from bnviz.library.catalog import QUESTION
from tests.apptest import button, open_page, wait_until_idle

# page file -> a text its default view must show once the library's runs are drawn
PAGES = {"ablation": "all four BN layers has the higher test accuracy",
         "learning_rate": "largest lr at which every seed trained",
         "bias": "with bias minus without", "devices": "Lost moving statistics",
         "gamma_beta": "final train loss", "fluctuation": "running statistics",
         "batch_size": "What these runs show",
         "lite_bn": "against full BN", "placement": "BN after the sigmoid",
         "weight_decay": "Test accuracy (PreciseBN) with weight decay",
         "train_only": "Training only gamma and beta reached",
         "ics": "By the paper's gradient measure BN",
         "landscape": "With the book's sigmoid (n = 5 paired seeds",
         "finetune": "running standard deviations"}


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "text", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_question_page_opens_with_the_library_answer(page):
    at = open_page(page)
    assert not at.exception, at.exception
    shown = texts(at)
    assert "From the results library: 5 paired seeds per configuration" in shown
    assert "measured with bnviz" in shown and "full Fashion-MNIST" in shown
    assert PAGES[page] in shown
    assert "No stored answer" not in shown
    assert at.get("plotly_chart")


def test_another_question_has_no_stored_answer_and_a_way_back():
    at = open_page("ablation", {"epochs": "4"})
    assert not at.exception, at.exception
    shown = texts(at)
    assert "No stored answer for these settings yet" in shown and "Press **Run**" in shown
    assert "From the results library" not in shown
    button(at, "↺ Back to the stored answer").click().run()
    assert "From the results library: 5 paired seeds" in texts(at)
    assert "epochs" not in at.query_params  # the page's default (10) needs no parameter


def test_page_defaults_round_trip_through_the_link():
    """The bias page opens at 3 epochs (its library question); a link asking for 10, which is
    Config's default, must keep 10."""
    at = open_page("bias")
    assert next(n for n in at.number_input if n.label == "Epochs").value == 3
    at = open_page("bias", {"epochs": "10"})
    assert next(n for n in at.number_input if n.label == "Epochs").value == 10
    assert at.query_params["epochs"] == "10"
    # "bias on" at 10 epochs is LeNet-BN's default run: the library has it, not "bias off"
    assert "The results library holds 5 of these 10 runs" in texts(at)


def test_compare_adds_library_runs_like_any_other():
    lib = Library(LIBRARY_FILE)
    p = QUESTION["ablation"].points()
    ids = [lib.find(p[0].config), lib.find(p[5].config)]
    at = open_page("compare", {"runs": ",".join(ids)})
    assert not at.exception, at.exception
    assert not any("Not in this server's store" in w.value for w in at.warning)
    chosen = next(m for m in at.multiselect if m.label == "Runs to compare")
    assert set(chosen.value) == set(ids)
    shown = list(chosen.options)  # as the page formats them
    assert sum(s.startswith("library · ") for s in shown) >= len(ids)
    assert len(at.dataframe) >= 1 and at.get("plotly_chart")


@pytest.mark.slow  # trains the batch-1 question's three runs again here (about 30 s)
def test_a_run_trained_here_is_shown_beside_the_librarys():
    at = open_page("batch_size", {"seeds": "1"})
    assert not at.exception, at.exception
    at.button(key="again_▶ Run the batch-1 runs").click().run()
    wait_until_idle(3, 300)
    at.run()
    table = [d.value for d in at.dataframe]
    labels = [str(x) for df in table if "configuration" in df for x in df["configuration"]]
    assert any(label.endswith(" · run here") for label in labels), labels
