"""Writes README's "Findings" section from the results library (bnviz/library/runs.sqlite).

The library's answers are exported as <question>/summary.csv and results.csv (mean, 95%
Student-t CI and n over paired seeds, as `bnviz sweep --out` writes them) and rendered;
every sentence that says one thing beats another is chosen by bnviz.stats.separated, so the
README cannot claim a difference its intervals do not support. The pages draw the same runs.

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

from bnviz.config import PRESET_HELP  # noqa: E402
from bnviz.stats import Estimate, compare_text  # noqa: E402



def est(row, metric: str) -> Estimate:
    return Estimate(float(row[metric]), float(row[f"{metric}_ci"]), int(row["n"]))


def pm(row, metric: str, digits: int = 3) -> str:
    m, h = row[metric], row[f"{metric}_ci"]
    if m != m:
        return "–"
    return f"{m:.{digits}f}" + ("" if h != h else f" ± {h:.{digits}f}")


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


def by_label(s: pd.DataFrame, label: str):
    r = s[s.run == label]
    return None if r.empty else r.iloc[0]


def section_fluctuation(s, runs) -> str:
    r = s.iloc[0]
    rows = [[name, pm(r, f"final_acc_{m}") if f"final_acc_{m}" in r else "–", pm(r, f"fluct_{m}")]
            for m, name in (("running", "running (PyTorch default)"),
                            ("precise", "PreciseBN (4,096 training images, current weights)"),
                            ("batch", "batch statistics"))]
    text = [f"**Fluctuating test accuracy (question 5)**: LeNet-BN, 10 epochs, evaluated three "
            f"ways after every epoch on the same weights (`bnviz sweep fluctuation "
            f"--seeds 5`), n = {int(r.n)} ({seeds_of(runs)}).", "",
            table(rows, ["test-time statistics", "final test acc",
                         "std of test acc over epochs 6–10"]), ""]
    text.append("- Swing: " + compare_text("PreciseBN", est(r, "fluct_precise"),
                                         "running statistics", est(r, "fluct_running"),
                                         "epoch-to-epoch std", 4)
                .replace("has the higher", "has the larger"))
    text.append("- Final accuracy: " + compare_text("PreciseBN", est(r, "test_acc_precise"),
                                                  "running statistics",
                                                  est(r, "test_acc_running"),
                                                  "final test accuracy"))
    return "\n".join(text)


def section_ablation(s, runs) -> str:
    rows = [[r.run, str(int(r.n)), pm(r, "train_loss"), pm(r, "test_acc_running"),
             pm(r, "test_acc_precise")] for _, r in s.iterrows()]
    ref = by_label(s, "all four BN layers")
    text = [f"**Which BN layers matter (questions 9 and 10)**, 10 epochs each (`bnviz "
            f"ablation --epochs 10 --seeds 5`), {seeds_of(runs)}, paired across rows.", "",
            table(rows, ["configuration", "n", "train loss", "test acc (running stats)",
                         "test acc (PreciseBN)"]), "",
            "Against all four BN layers, test accuracy with PreciseBN statistics:", ""]
    for _, r in s.iterrows():
        if r.run != "all four BN layers":
            text.append(f"- {r.run}: " + compare_text(r.run, est(r, "test_acc_precise"),
                                                     "all four", est(ref, "test_acc_precise"),
                                                     "test accuracy"))
    return "\n".join(text)


def section_sweep(s, runs, x: str, title: str, cmd: str, xname: str, by: str = "norm") -> str:
    groups = list(dict.fromkeys(s[by])) if by in s else [""]
    xs = sorted(set(s[x]))
    rows = []
    for v in xs:
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
    return "\n".join([f"**{title}** (`{cmd}`), {seeds_of(runs)}.", "", table(rows, head)])


def section_pairs(s, runs, title: str, cmd: str, pairs: list[tuple[str, str]],
                  metric: str = "test_acc_running") -> str:
    rows = [[r.run, str(int(r.n)), pm(r, "train_acc"), pm(r, "test_acc_running"),
             pm(r, "test_acc_precise")] if r.n else
            [r.run, "0", f"all {int(r.runs)} runs failed or diverged", "–", "–"]
            for _, r in s.iterrows()]
    text = [f"**{title}** (`{cmd}`), {seeds_of(runs)}.", "",
            table(rows, ["configuration", "n", "train acc", "test acc (running stats)",
                         "test acc (PreciseBN)"]), ""]
    for a, b in pairs:
        ra, rb = by_label(s, a), by_label(s, b)
        if ra is not None and rb is not None:
            text.append(f"- {compare_text(a, est(ra, metric), b, est(rb, metric))}")
    return "\n".join(text)


def section_bias(s, runs, views_dir: Path) -> str:
    text = [section_pairs(s, runs, "Bias before BN (question 7)", "bnviz sweep bias "
                          "--epochs 3 --seeds 5", [("bias on", "bias off")], "test_acc_precise")]
    diff = views_dir / "loss_difference.txt"
    if diff.is_file():
        text.append("")
        text.append("Both arms start from identical weights and see the same batches. Largest "
                    "step-by-step difference between their float32 training losses, " +
                    diff.read_text().strip() + ". That is rounding (`x + b − mean(x + b)` and "
                    "`x − mean(x)` differ in the last bit) grown by thousands of steps at lr "
                    "1.0: in float64 the two arms' losses agree to about 1e-13 over 20 steps "
                    "(`bnviz.bias.bias_equivalence`, shown on the bias page). The cancelled "
                    "biases save 226 parameters.")
    return "\n".join(text)


D2L_REFERENCE = {  # d2l zh edition, PyTorch, 10 epochs: train loss, train acc, test acc
    "d2l-lenet-bn": ("0.265–0.267", "0.902", "0.708–0.863"),
    "d2l-lenet-bn-scratch": ("0.266–0.273", "0.899–0.901", "0.81–0.85"),
    "d2l-lenet": ("0.46–0.47", "0.82–0.83", "0.74–0.79"),
}


def render_d2l(out: Path) -> str:
    s, runs = load(out, "presets")
    if s is None:
        return "*(not measured yet: run `scripts/findings.sh`.)*"
    rows = []
    for _, r in s.iterrows():
        ref = D2L_REFERENCE.get(r.run, ("?", "?", "?"))
        rows.append([f"`{r.run}`: {PRESET_HELP.get(r.run, '')}", str(int(r.n)), pm(r, "train_loss"), pm(r, "train_acc"),
                     pm(r, "test_acc_running"), pm(r, "test_acc_precise"),
                     " / ".join(ref)])
    return "\n".join([
        f"`bnviz sweep presets --epochs 10 --seeds 5 --dataset full` ({seeds_of(runs)}; "
        "each preset alone: `bnviz train --preset NAME`), 10 epochs, full "
        "Fashion-MNIST, this project's 2-core CPU. Mean ± 95% CI over seeds:", "",
        table(rows, ["preset", "n", "train loss", "train acc", "test acc (running stats)",
                     "test acc (PreciseBN)", "d2l's reference: loss / train acc / test acc"]),
        "", "Train loss and accuracy are tight across seeds, as in the book; test accuracy with "
        "running statistics swings (question 5), PreciseBN much less."])


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
             "then `python3 scripts/findings.py`, which rewrites this section). LeNet-BN, batch 256, lr 1.0, sigmoid, unless a row says "
             "otherwise. Every cell is the mean ± the half-width of its 95% confidence "
             "interval over paired seeds (Student t), n seeds; a sentence calls a difference "
             "only where the two intervals do not overlap."]
    sections = [
        ("fluctuation", section_fluctuation),
        ("ablation", section_ablation),
        ("lr", lambda s, r: section_sweep(s, r, "lr", "Learning rate (question 8), 2 epochs",
                                          "bnviz sweep lr --epochs 2 --seeds 5 "
                                          "--values 0.1,1,3,10,30", "lr")),
        ("norm_batch", lambda s, r: section_pairs(
            s, r, "Examples per BN at SGD batch 256 (question 1; Group Normalization paper's "
            "question), 2 epochs", "bnviz sweep norm_batch --epochs 2 --seeds 5",
            [(s.run.iloc[0], s.run.iloc[len(s) - 3]), (s.run.iloc[len(s) - 3], s.run.iloc[-2])]
            if len(s) >= 3 else [],
            "test_acc_precise")),
        ("devices", lambda s, r: section_pairs(
            s, r, "Several devices (question 6), 3 epochs", "bnviz sweep "
            "dataparallel --epochs 3 --seeds 5", [
                ("book BN, 2 devices (DataParallel)", "book BN, 1 device"),
                ("nn.BatchNorm, 8 devices (32 per device)", "nn.BatchNorm, 1 device")])),
        ("bias", lambda s, r: section_bias(s, r, out / "bias")),
        ("gamma", lambda s, r: section_pairs(
            s, r, "gamma and beta learned or frozen at 1 and 0 (d2l's exercise), 10 epochs",
            "bnviz library show --only gamma", [("gamma/beta learned", "gamma/beta frozen")],
            "test_acc_precise")),
        ("sgd_batch", lambda s, r: section_sweep(
            s, r, "batch_size", "SGD batch size at a fixed number of examples seen (2 epochs, "
            "lr 1.0 × batch / 256, GroupNorm 2 groups)", "bnviz library show --only "
            "sgd_batch", "SGD batch")),
        ("batch1", lambda s, r: section_pairs(
            s, r, "Batch size 1 (the bundled subset, 2,000 images, 1 epoch, lr 0.02, ReLU)",
            "bnviz library show --only batch1", [], "test_acc_running")),
    ]
    for name, fn in sections:
        s, runs = load(out, name)
        if s is not None:
            parts.append(fn(s, runs))
        else:
            parts.append(f"*(`{name}` not measured yet: run `scripts/findings.sh`.)*")
    return "\n\n".join(parts)


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
    if args.print:
        print(d2l + "\n\n" + body)
        return 0
    readme = Path(args.readme)
    text = replace_block(readme.read_text(), "findings", body)
    text = replace_block(text, "d2l", d2l)
    readme.write_text(text)
    print(f"findings: wrote {len(body.splitlines())} lines into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
