"""Writes README's "Findings" section from the results library (bnviz/library/runs.sqlite).

The library's answers are exported as <question>/summary.csv and results.csv (mean, 95%
Student-t CI and n over paired seeds, as `bnviz sweep --out` writes them) and rendered. Every
sentence is chosen by the data: comparisons and verdicts are the core's readings
(bnviz.readings, the same objects the pages render), so the README cannot claim a difference
its intervals do not support, and an arm a reading needs that is missing is an error, never a
silent skip. Headings and commands come from the question catalog (bnviz/library/catalog.py).

    python3 scripts/findings.py [--readme README.md] [--print]   # from the library
    python3 scripts/findings.py --out DIR                          # from grids run with --out
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnviz import readings  # noqa: E402
from bnviz.config import PRESET_HELP, Config  # noqa: E402
from bnviz.library.catalog import QUESTION, QUESTIONS  # noqa: E402
from bnviz.metrics import EVAL_MODE_LABELS, EVAL_MODES, format_estimate  # noqa: E402


def pm(row, metric: str, digits: int = 3) -> str:
    return format_estimate(row[metric], row[f"{metric}_ci"], digits)


def table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def load(out: Path, name: str):
    d = out / name
    if not (d / "summary.csv").is_file():
        return None, None
    return pd.read_csv(d / "summary.csv"), pd.read_csv(d / "results.csv")


def seeds_of(runs: pd.DataFrame) -> str:
    s = sorted(set(runs.seed))
    return f"seeds {s[0]}–{s[-1]}" if len(s) > 1 else f"seed {s[0]}"


def epochs_of(runs: pd.DataFrame) -> str:
    e = sorted(set(runs.epochs)) if "epochs" in runs else []
    if not e:
        return ""
    return "/".join(map(str, e)) + f" epoch{'s' if e != [1] else ''}"


def heading(q, runs) -> str:
    ep = epochs_of(runs)
    return f"**{q.heading}**{', ' + ep if ep else ''} (`{q.cli}`), {seeds_of(runs)}."


def bullets(reading) -> list[str]:
    return [f"- {c.text()}" for c in reading.comparisons]


def pairs_table(s) -> str:
    rows = [[r.run, str(int(r.n)), pm(r, "train_acc"), pm(r, "test_acc_running"),
             pm(r, "test_acc_precise")] if r.n else
            [r.run, "0", f"all {int(r.runs)} runs failed or diverged", "–", "–"]
            for _, r in s.iterrows()]
    return table(rows, ["configuration", "n", "train acc", "test acc (running stats)",
                        "test acc (PreciseBN)"])


def sweep_table(s, x: str, xname: str, by: str = "norm") -> str:
    groups = list(dict.fromkeys(s[by])) if by in s else [""]
    rows = []
    for v in sorted(set(s[x])):
        row = [f"{v:g}"]
        for g in groups:
            r = s[(s[x] == v) & (s[by] == g)] if by in s else s[s[x] == v]
            if r.empty:
                row.append("–")
                continue
            r = r.iloc[0]
            bad = f", {int(r.ended_badly)} of {int(r.runs)} diverged" if r.ended_badly else ""
            row.append(f"{pm(r, 'train_loss')} / {pm(r, 'test_acc_precise')}"
                       f" (n = {int(r.n)}{bad})" if r.n else f"all {int(r.runs)} diverged")
        rows.append(row)
    head = [xname] + [f"{g}: train loss / test acc (PreciseBN)" for g in groups]
    return table(rows, head)


# -- one renderer per question (a question without one is an error) ---------------------------

def section_fluctuation(q, s, runs, out) -> str:
    r = s.iloc[0]
    reading = readings.fluctuation(s)
    precise = Config().precise_samples
    names = {"running": "running (PyTorch default)",
             "precise": f"PreciseBN ({precise:,} training images, current weights)",
             "batch": EVAL_MODE_LABELS["batch"]}
    rows = [[names[m], pm(r, f"final_acc_{m}"), pm(r, f"fluct_{m}")] for m in EVAL_MODES]
    swing, _, final = reading.comparisons
    return "\n".join([
        heading(q, runs) + " Each run is evaluated three ways after every epoch, on the "
        "same weights.", "",
        table(rows, ["test-time statistics", "final test acc",
                     "std of test acc over the last 5 evaluations"]), "",
        f"- Swing: {swing.text()}", f"- Final accuracy: {final.text()}"])


def section_ablation(q, s, runs, out) -> str:
    rows = [[r.run, str(int(r.n)), pm(r, "train_loss"), pm(r, "test_acc_running"),
             pm(r, "test_acc_precise")] for _, r in s.iterrows()]
    reading = readings.ablation(s)
    return "\n".join([
        heading(q, runs).rstrip(".") + ", paired across rows.", "",
        table(rows, ["configuration", "n", "train loss", "test acc (running stats)",
                     "test acc (PreciseBN)"]), "",
        "Against all four BN layers, test accuracy with PreciseBN statistics:", ""]
        + [f"- {c.name_a}: {c.text()}" for c in reading.comparisons])


def section_lr(q, s, runs, out) -> str:
    limits = readings.lr(s).facts["limits"]
    return "\n".join([heading(q, runs), "", sweep_table(s, "lr", "lr"), ""]
                     + [f"- {readings.lr_text(limit)}" for limit in limits])


def section_devices(q, s, runs, out) -> str:
    reading = readings.devices(s)
    text = [heading(q, runs), "", pairs_table(s), ""] + bullets(reading)
    f = reading.facts
    if reading.verdict == "lost statistics":
        text.append(f"- What explains the drop: the lost moving statistics (the book's BN "
                    f"loses {f['drop_book']:.3f} test accuracy on 2 devices while its training "
                    f"is unchanged; nn.BatchNorm's statistics taken on "
                    f"{int(s[s.arm == 'bn_8'].devices.iloc[0])} devices change its by "
                    f"{-f['drop_slices']:+.3f}).")
    else:
        text.append("- With these seeds the lost statistics and the smaller per-device "
                    "batches cannot be told apart.")
    return "\n".join(text)


def bias_facts() -> str:
    """The two numbers the bias section states, computed now: the parameters the cancelled
    biases save, and how far the two arms' float64 losses ever get apart (the bundled subset,
    so the same on every machine)."""
    from bnviz.bias import bias_equivalence, parameter_counts
    base = QUESTION["bias"].base().replace(dataset="subset")
    with_b, without_b = parameter_counts(base)
    eq = bias_equivalence(base)
    # The residue itself (1e-13 on one CPU, 6e-14 on another) depends on the CPU's kernels,
    # so the README states the bound it is under, which every machine can check.
    agree = (f"agree to better than 1e-10 over {eq.steps} steps" if eq.loss_diff < 1e-10 else
             f"differ by up to {eq.loss_diff:.1e} over {eq.steps} steps")
    return (f"in {eq.dtype} the two arms' losses {agree} (`bnviz.bias.bias_equivalence` on the "
            f"bundled subset, shown on the bias page). The cancelled biases save "
            f"{with_b - without_b} parameters.")


def section_bias(q, s, runs, out) -> str:
    text = [heading(q, runs), "", pairs_table(s), ""] + bullets(readings.bias(s))
    diff = out / q.key / "loss_difference.txt"
    if diff.is_file():
        text += ["", "Both arms start from identical weights and see the same batches. Largest "
                 "step-by-step difference between their float32 training losses, "
                 + diff.read_text().strip() + ". That is rounding (`x + b − mean(x + b)` and "
                 "`x − mean(x)` differ in the last bit) grown over the steps at lr "
                 f"{QUESTION['bias'].base().lr:g}: " + bias_facts()]
    return "\n".join(text)


def section_sgd_batch(q, s, runs, out) -> str:
    reading = readings.sgd_batch(s)
    return "\n".join([heading(q, runs), "", sweep_table(s, "batch_size", "SGD batch"), ""]
                     + [f"- {c.a.split('@')[0]}: {c.text()}" for c in reading.comparisons])


def section_batch1(q, s, runs, out) -> str:
    reading = readings.batch1(s)
    text = [heading(q, runs), "", pairs_table(s), "", f"- BN on the conv layers only: "
            f"{reading.comparisons[0].text()}"]
    return "\n".join(text)


def section_generic(q, s, runs, out) -> str:
    """A question with no renderer of its own: the per-configuration table and its reading's
    comparisons (a question with no reading is an error: the README says nothing unread)."""
    if q.read is None:
        raise SystemExit(f"findings: question {q.key!r} has neither a reading nor a renderer")
    return "\n".join([heading(q, runs), "", pairs_table(s), ""] + bullets(q.read(s)))


# Questions whose section needs more than the generic table and comparisons.
SECTIONS = {"fluctuation": section_fluctuation, "ablation": section_ablation,
            "lr": section_lr, "devices": section_devices, "bias": section_bias,
            "sgd_batch": section_sgd_batch, "batch1": section_batch1}
D2L = "presets"  # rendered as the "Reproducing d2l" table

# What each edition prints after its 10 epochs (PyTorch): train loss, train acc, test acc. The
# Chinese edition's train_ch6 prints them (the ranges cover its printings and the forum's
# reruns); the English edition's d2l.Trainer draws the curves and prints no numbers.
D2L_REFERENCE = {
    "d2l-lenet-bn": ("0.265–0.267", "0.902", "0.708–0.863"),
    "d2l-lenet-bn-scratch": ("0.266–0.273", "0.899–0.901", "0.81–0.85"),
    "d2l-lenet": ("0.46–0.47", "0.82–0.83", "0.74–0.79"),
    "d2l-en-lenet-bn": ("—", "—", "—"),
    "d2l-en-lenet-bn-scratch": ("—", "—", "—"),
}


def render_d2l(out: Path) -> str:
    q = QUESTION[D2L]
    s, runs = load(out, q.key)
    if s is None:
        return "*(not measured yet: run `scripts/findings.sh`.)*"
    rows = []
    for _, r in s.iterrows():
        ref = D2L_REFERENCE[r.arm]
        rows.append([f"`{r.arm}`: {PRESET_HELP[r.arm]}", str(int(r.n)), pm(r, "train_loss"),
                     pm(r, "train_acc"), pm(r, "test_acc_running"), pm(r, "test_acc_precise"),
                     " / ".join(ref)])
    reading = readings.presets(s)
    f = reading.facts
    # Half-widths are stated, not compared: a ratio of two n = 5 spreads has no interval here
    # (the fluctuation section compares swings with one).
    spread = (f"Across seeds the 95% CI of LeNet-BN's train accuracy is ± "
              f"{f['half_train_acc']:.3f}; of its test accuracy ± "
              f"{f['half_test_acc_running']:.3f} with running statistics and ± "
              f"{f['half_test_acc_precise']:.3f} with PreciseBN (n = {f['n']}).")
    if reading.verdict == "running swings":
        spread += (" Test accuracy with running statistics is the number that swings from "
                   "run to run, as in the book's reruns (question 5).")
    return "\n".join([
        f"`{q.cli}` ({seeds_of(runs)}; each preset alone: `bnviz train --preset NAME`), "
        f"{epochs_of(runs)}, full Fashion-MNIST, this project's 2-core CPU. Mean ± 95% CI over "
        "seeds:", "",
        table(rows, ["preset", "n", "train loss", "train acc", "test acc (running stats)",
                     "test acc (PreciseBN)", "its edition prints: loss / train acc / test acc"]),
        "", "The Chinese edition's `train_ch6` prints the three numbers (the ranges cover its "
        "printings and the forum's reruns); the English edition's `d2l.Trainer` draws the "
        "curves and prints none (—). Both editions initialise the conv and linear weights with "
        "`xavier_uniform_`.", "", spread, "",
        *(f"- {c.text()}" for c in reading.comparisons)])


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"findings: README has no {start} … {end} markers")
    return re.sub(re.escape(start) + ".*?" + re.escape(end),
                  lambda _: f"{start}\n{body}\n{end}", text, flags=re.S)


def render(out: Path) -> str:
    parts = ["These are the results library's runs (`bnviz/library/runs.sqlite`, the same "
             "runs the pages open with). Regenerate with `scripts/findings.sh` "
             "(`python3 -m bnviz library build`, which trains only what the library lacks, "
             "then `python3 scripts/findings.py`, which rewrites this section). LeNet-BN, "
             "batch 256, lr 1.0, sigmoid, unless a row says otherwise. Every cell is the mean "
             "± the half-width of its 95% confidence interval over paired seeds (Student t), "
             "n seeds; a sentence calls a difference only where the two intervals do not "
             "overlap."]
    for q in QUESTIONS:
        if q.key == D2L:
            continue
        s, runs = load(out, q.key)
        if s is None:
            parts.append(f"*(`{q.key}` not measured yet: run `scripts/findings.sh`.)*")
        else:
            parts.append(SECTIONS.get(q.key, section_generic)(q, s, runs, out))
    return "\n\n".join(parts)


def render_pages() -> str:
    """README's list of pages: the About page's table, from the same catalog entries."""
    from bnviz.library.catalog import PAGES, answers_text
    return table([[f"**{p.title}**", f"`/{p.id}`", answers_text(p)] for p in PAGES
                  if p.answers], ["page", "address", "what it answers"])


def from_library(tmp: Path) -> Path:
    from bnviz.library import LIBRARY_FILE, Library
    from bnviz.library.build import export
    export(Library(LIBRARY_FILE), tmp)
    return tmp


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="a folder of grid results (default: the results library)")
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    p.add_argument("--print", action="store_true", help="print the section, change nothing")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else from_library(Path(tmp))
        body, d2l = render(out), render_d2l(out)
    pages = render_pages()
    if args.print:
        print(pages + "\n\n" + d2l + "\n\n" + body)
        return 0
    readme = Path(args.readme)
    text = replace_block(readme.read_text(), "findings", body)
    text = replace_block(text, "d2l", d2l)
    text = replace_block(text, "pages", pages)
    readme.write_text(text)
    print(f"findings: wrote {len(body.splitlines())} lines into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
