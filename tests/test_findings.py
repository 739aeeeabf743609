"""README's Findings and its d2l table are rendered from the results library (real runs of
bnviz, the ones the pages open with): the README cannot drift from it, and the renderer works
on fresh output of today's CLI."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def rendered(out=None) -> str:
    where = ["--out", str(out)] if out else []
    r = subprocess.run([sys.executable, "scripts/findings.py", *where, "--print"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def block(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    return text.split(start, 1)[1].split(end, 1)[0]


def test_readme_findings_are_the_rendering_of_the_results_library():
    readme = (ROOT / "README.md").read_text()
    out = rendered()
    assert block(readme, "findings") in out and block(readme, "d2l") in out
    assert block(readme, "pages") in out  # the list of pages: the catalog's, as About shows it
    assert "`/lite-bn`" in block(readme, "pages")
    assert "not measured yet" not in block(readme, "findings")
    assert "± " in block(readme, "findings") and "n = 5" in block(readme, "findings")


@pytest.mark.slow  # trains a grid
def test_findings_render_from_a_fresh_grid(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bnviz", "sweep", "bias", "--dataset", "subset",
                        "--train-size", "256", "--batch-size", "128", "--epochs", "1",
                        "--seeds", "2", "--no-store", "--out", str(tmp_path / "bias")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = rendered(tmp_path)
    assert "**Bias before BN (question 7)**" in text and "seeds 0–1" in text
    assert "over the first 20 steps" in text
    assert "`ablation` not measured yet" in text  # what was not run says so, nothing invented
