"""Build and check the results library.

build: every run of every question's default grid (catalog.QUESTIONS) that the library lacks
is copied from the user's run store when a finished run of the same config and seed is
there, else trained on the CPU with one torch thread per process (deterministic per seed, so
`check --full` can retrain one and compare). Each run is written the moment it ends, so a
stopped build resumes where it stopped. The step series is averaged into at most STEP_POINTS
points; evaluations and gamma/beta snapshots are kept whole.

check: every question's default grid present with its seeds, every stored config valid and
stored under the id today's code computes for it; then the first PREFIX_STEPS steps of entries
are trained again from their stored config and seed, exactly as the build trained them, and
must give the stored step losses and batch accuracies bit for bit (bnviz.library.prefix):
a change to the trainer, the init, the model or the data order fails it and names the entries.
A seeded sample with at least one entry of every question by default, every entry with
`every`; with retrain (`--full`), one entry chosen at random is also trained to the end and
must match its stored final numbers. A build records the commit and the code fingerprint it
was made with (bnviz.library.provenance); check reports a changed fingerprint as information,
the retrained steps decide.
"""
from __future__ import annotations

import json
import math
import os
import platform
import random
import sqlite3
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, TextIO

from bnviz.config import Config, config_from_dict, validate
from bnviz.library import ENDED, LIBRARY_FILE, SOURCE, Library, bnviz_version, library_key
from bnviz.library import prefix, provenance
from bnviz.library.prefix import STEP_POINTS, downsample_steps
from bnviz.library.catalog import QUESTIONS, Question
from bnviz.runs import lookup
from bnviz.runs.record import RunView
from bnviz.runs.store import RunStore, StoreError, rekey_config_ids

PREFIX_STEPS = 20  # steps retrained per checked entry (a bucket of a small-batch run is more)
MATCHED = ("train_loss", "train_acc", "test_acc_running", "test_acc_precise")
TOLERANCE = 1e-6  # CPU training is bitwise repeatable per seed; this only absorbs printing


@dataclass
class Entry:
    """One run the library must hold, and every (question, label) it answers."""
    config: Config
    answers: list[tuple[str, str]]

    @property
    def name(self) -> str:
        q, label = self.answers[0]
        return f"{q} · {label}, seed {self.config.seed}"


def plan(questions: Iterable[Question] = QUESTIONS) -> list[Entry]:
    """The library's runs, each once (the d2l preset is also the ablation's 'all four')."""
    entries: dict[tuple, Entry] = {}
    for q in questions:
        for p in q.points():
            cfg = library_key(p.config)
            key = (cfg.config_id(), cfg.seed, cfg.dataset)
            if key in entries:
                entries[key].answers.append((q.key, p.label))
            else:
                entries[key] = Entry(cfg, [(q.key, p.label)])
    return list(entries.values())


def as_library_run(v: RunView, entry: Entry, trained_here: bool = True) -> RunView:
    """`v` as the library keeps it; a run this build trained also keeps the commit and code
    fingerprint it was trained with (one copied from the run store cannot know them)."""
    import torch
    made = (dict(commit=provenance.commit(), code_fingerprint=provenance.fingerprint()["hash"])
            if trained_here else dict(commit="unknown (copied from the user's run store)",
                                      code_fingerprint=""))
    info = {**v.info, "source": SOURCE, "bnviz_version": bnviz_version(),
            "torch_version": torch.__version__.split("+")[0], **made,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "cpu": prefix.cpu_signature() if trained_here else "",
            "answers": [list(a) for a in entry.answers],
            "steps_note": (f"training loss and batch accuracy averaged over runs of "
                           f"{max(1, round(len(v.steps) / STEP_POINTS))} steps")
            if len(v.steps) > STEP_POINTS else ""}
    summary = {**v.summary, "config_id": v.config.config_id()}
    return replace(v, config=entry.config, info=info, summary=summary, session=SOURCE,
                   steps=downsample_steps(v.steps))


def train_one(cfg: Config, listeners=(), stop=None) -> RunView:
    """Train one run exactly as the library's were: as every runner trains
    (bnviz.runs.training: the fast path when built), with one torch thread."""
    from bnviz.runs.training import train_record
    with prefix.one_thread():
        return train_record(cfg, SOURCE, listeners, stop).view()


def train_batch(configs: list[Config]) -> list[RunView]:
    """Train one batch of entries (bnviz.runs.training.batches) as the runners do: one run
    alone, several as one batched model (their check then allows float rounding)."""
    from bnviz.runs.training import train_records
    with prefix.one_thread():
        return [r.view() for r in train_records(configs, SOURCE)]


class Progress:
    """A one-line bar on a terminal, one line per run elsewhere (logs, CI)."""

    def __init__(self, total: int, out: TextIO):
        self.total, self.out, self.done = total, out, 0
        self.tty = hasattr(out, "isatty") and out.isatty()

    def step(self, text: str, left_s: float | None = None) -> None:
        self.done += 1
        eta = f" · about {left_s / 60:.0f} min left" if left_s else ""
        if self.tty:
            filled = int(30 * self.done / max(1, self.total))
            self.out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"
                           f"{eta} · {text[:60]:<60}")
            if self.done == self.total:
                self.out.write("\n")
        else:
            self.out.write(f"[{self.done}/{self.total}] {text}{eta}\n")
        self.out.flush()


def _writable(path: Path) -> RunStore:
    lib = RunStore(path)
    c = lib._conn()
    with lib._write_lock:
        c.execute("BEGIN IMMEDIATE")
        n = rekey_config_ids(c)  # full configs are kept: an id change re-keys, never retrains
        c.execute("COMMIT")
    if n:
        print(f"re-keyed {n} library runs to today's config ids", file=sys.stderr)
    return lib


def _seal(path: Path) -> None:
    """One self-contained file (no -wal/-shm beside it), compacted, for read-only opening."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.execute("PRAGMA journal_mode=DELETE")
    c.execute("VACUUM")
    c.close()


def build(path: Path = LIBRARY_FILE, questions: Iterable[Question] = QUESTIONS,
          jobs: int = 2, reuse: RunStore | None = None, out: TextIO = sys.stderr,
          limit: int | None = None) -> dict:
    """Fill the library; returns counts (present, copied, trained, seconds). `limit` stops
    after training that many runs (tests, and a stop that resumes)."""
    from bnviz import cost, data
    entries = plan(questions)
    lib = _writable(path)
    todo, present, copied = [], 0, 0
    for e in entries:
        if lookup.in_store(lib, e.config, ENDED):
            present += 1
            continue
        found = lookup.in_store(reuse, e.config, ENDED) if reuse is not None else None
        if found:
            lib.save(as_library_run(reuse.load(found), e, trained_here=False))
            copied += 1
            continue
        todo.append(e)
    secs = {id(e): cost.estimate(e.config, *data.sizes(e.config.dataset)).seconds()
            for e in todo}
    todo.sort(key=lambda e: -secs[id(e)])  # longest first: two processes finish together
    if limit is not None:
        todo = todo[:limit]
    print(f"library {path}: {len(entries)} runs; {present} already in it, {copied} copied "
          f"from the run store, {len(todo)} to train on {jobs} process(es)", file=out)
    bar = Progress(len(todo), out)
    t0 = time.time()
    left = sum(secs[id(e)] for e in todo)
    if todo:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from bnviz.runs.training import batches
        from bnviz.speed.batched import MAX_BATCH
        groups = [[todo[i] for i in g] for g in batches([e.config for e in todo], MAX_BATCH)]
        with ProcessPoolExecutor(max(1, jobs), multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(train_batch, [e.config for e in g]): g for g in groups}
            for f in as_completed(futures):
                for e, v in zip(futures[f], f.result()):
                    lib.save(as_library_run(v, e))
                    left -= secs[id(e)]
                    bar.step(f"{e.name}: {v.status}, test acc "
                             f"{v.summary.get('test_acc', math.nan):.3f}",
                             max(0.0, left) / max(1, jobs))
    c = lib._conn()
    if copied or todo or not provenance.builds(c):
        with lib._write_lock:
            provenance.record(c, runs=len(entries), added=copied + len(todo))
    lib.close()
    _seal(path)
    return dict(runs=len(entries), present=present, copied=copied, trained=len(todo),
                seconds=time.time() - t0)


def check(path: Path = LIBRARY_FILE, questions: Iterable[Question] = QUESTIONS,
          retrain: bool = False, rng: random.Random | None = None,
          out: TextIO = sys.stdout, every: bool = False, steps: int = PREFIX_STEPS,
          sample_seed: int | None = None) -> list[str]:
    """Problems found (empty: the library answers today's code). The first `steps` steps of
    a sample (seeded by `sample_seed`, else at random: at least one entry of every question)
    or of `every` entry are retrained and compared; steps=0 retrains none."""
    try:
        lib = Library(path)
    except StoreError as e:
        return [f"the library cannot be read: {e}"]
    problems: list[str] = []
    stale = 0
    for r in lib.store._read("SELECT run_id, config_id, seed, config, info FROM runs"):
        answers = json.loads(r["info"]).get("answers") or [["?", "?"]]
        name = f"{answers[0][0]} · {answers[0][1]}, seed {r['seed']} (run {r['run_id']})"
        raw = json.loads(r["config"])
        cfg = config_from_dict(raw)
        unknown = sorted(set(raw) - set(cfg.to_dict()))
        errs = validate(cfg) + [f"setting {k!r} no longer exists" for k in unknown]
        if errs:
            problems.append(f"invalid config: {name}: {'; '.join(errs)}")
        elif cfg.config_id() != r["config_id"]:
            stale += 1
            problems.append(f"stale entry: {name} is stored under config id {r['config_id']}, "
                            f"today's code computes {cfg.config_id()} for its config")
    missing = []
    for q in questions:
        for p in q.points():
            if lib.find(p.config) is None:
                missing.append(f"missing: {q.key} · {p.label}, seed {p.config.seed} (config "
                               f"id {library_key(p.config).config_id()})")
    problems += missing
    if stale or missing:
        problems.append("a knob default, the config-id scheme or a page's default grid "
                        "changed: run `python -m bnviz library build` (it re-keys stored "
                        "configs and trains only what is missing)")
    print(f"library {path}: {len(lib)} runs, {path.stat().st_size / 1e6:.1f} MB; "
          f"{sum(len(q.points()) for q in questions)} question runs checked", file=out)
    questions = tuple(questions)
    print(provenance.report(lib.store._conn()), file=out)
    if steps > 0:
        entries = [e for e in plan(questions) if lib.get(e.config) is not None]
        if not every:
            seed = random.randrange(10**6) if sample_seed is None else sample_seed
            entries = prefix.sample(entries, questions, random.Random(seed))
            print(f"sample seed {seed} (`--sample-seed {seed}` checks the same entries; "
                  f"`--all` checks every entry)", file=out)
        problems += prefix.check_entries(lib, entries, steps, out)
    if retrain and not problems:
        problems += check_retrain(lib, questions, rng or random.Random(), out)
    return problems


def check_retrain(lib: Library, questions: Iterable[Question], rng: random.Random,
                  out: TextIO) -> list[str]:
    entry = rng.choice(plan(questions))
    stored = lib.get(entry.config)
    print(f"retraining {entry.name} (run {stored.run_id}) ...", file=out, flush=True)
    t0 = time.time()
    fresh = train_one(entry.config)
    print(f"  {time.time() - t0:.0f} s; stored / now:", file=out)
    problems = []
    if fresh.status != stored.status:
        problems.append(f"{entry.name}: stored {stored.status}, retrained {fresh.status}")
    for k in MATCHED:
        a, b = stored.summary.get(k, math.nan), fresh.summary.get(k, math.nan)
        print(f"  {k:18s} {a:.6f} / {b:.6f}", file=out)
        same = (a != a and b != b) or abs(a - b) <= TOLERANCE
        if not same:
            problems.append(f"{entry.name}: {k} stored {a:.6f}, retrained {b:.6f}")
    return problems


def answer(lib: Library, q: Question):
    """A question's runs table (one row per configuration × seed) from the library."""
    from bnviz.runs.results import runs_table
    points = q.points()
    return runs_table(points, [lib.get(p.config) for p in points])


def answers_text(lib: Library, questions: Iterable[Question] = QUESTIONS) -> str:
    """Every question's answer as text: the grid CLI's table (mean ± 95% CI half-width, n)."""
    from bnviz.runs.results import summarize, summary_text
    parts = []
    for q in questions:
        epochs = sorted({p.config.epochs for p in q.points()})
        parts.append(f"{q.title} ({q.key}; {'/'.join(map(str, epochs))} "
                     f"epoch{'s' if epochs != [1] else ''})\n"
                     + summary_text(summarize(answer(lib, q))))
    return "\n\n".join(parts)


def export(lib: Library, out: Path, questions: Iterable[Question] = QUESTIONS) -> list[Path]:
    """Each question's results.csv (one row per run) and summary.csv (mean, 95% CI, n per
    configuration) under out/<key>/, as `bnviz sweep --out` writes them; the bias question
    also gets loss_difference.txt. scripts/findings.py renders the README from these."""
    from bnviz.runs.results import bias_lines, summarize, write_loss_difference
    written = []
    for q in questions:
        table = answer(lib, q)
        d = out / q.key
        d.mkdir(parents=True, exist_ok=True)
        table.to_csv(d / "results.csv", index=False)
        summarize(table).to_csv(d / "summary.csv", index=False)
        written.append(d)
        if q.key == "bias":
            views = {v.run_id: v for v in (lib.get(p.config) for p in q.points()) if v}
            write_loss_difference(d, bias_lines(table, views))
    return written
