"""The library's step series, and the check that today's code still computes it.

A run keeps its training loss and batch accuracy per step, averaged into at most STEP_POINTS
rows (equal runs of steps, "buckets") when it has more steps; a 10-epoch run at batch 256 is
kept whole (75 shipped runs, from an earlier build, keep 400 points: the check reads each
series' bucket size from the series itself). The check trains the first steps of an entry
again from its stored config and seed, exactly as the build trained it (bnviz.runs.training,
one torch thread, on the CPU), and asks for the stored rows bit for bit: the first `k` steps
of a run kept whole, or the whole buckets that the first `k` steps reach of a downsampled one
(averaged by the same code as the build, so a bucket's mean is the same float). A run that
ended (diverged, failed) before `k` steps must end the same way after the same steps. The loss
is a float32 on the device and the store keeps float32, so equal means equal, not close.
"""
from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from typing import Iterable, TextIO

import numpy as np

from bnviz.library import SOURCE

STEP_POINTS = 2400  # a 10-epoch run at batch 256 (2,350 steps) is kept whole


def bucket_edges(n: int, points: int = STEP_POINTS) -> np.ndarray | None:
    """Where a run of `n` steps is cut into `points` equal runs of steps (None: kept whole)."""
    return None if n <= points else np.linspace(0, n, points + 1).astype(int)


def bucket_rows(steps: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """One row per run of steps edges[i]:edges[i+1]: loss and batch accuracy averaged over
    it, at the iteration and epoch of its last step. `steps` need only reach edges[-1]."""
    out = np.empty((len(edges) - 1, steps.shape[1]))
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        out[i, :2] = steps[b - 1, :2]
        out[i, 2:] = steps[a:b, 2:].mean(axis=0)
    return out


def downsample_steps(steps: np.ndarray, points: int = STEP_POINTS) -> np.ndarray:
    """At most `points` rows: loss and batch accuracy averaged over equal runs of steps,
    each row at the iteration and epoch of its last step."""
    edges = bucket_edges(len(steps), points)
    return steps.copy() if edges is None else bucket_rows(steps, edges)


@contextmanager
def one_thread():
    """One torch thread, as the library was trained: CPU training is then bitwise
    repeatable per seed (OpenMP teams split sums differently)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stored_edges(stored: np.ndarray) -> np.ndarray | None:
    """The bucket edges a stored series was averaged with (None: kept whole). Read from the
    series itself (an earlier build kept 400 points, today's keeps STEP_POINTS): each row sits
    at its bucket's last iteration, and iterations run 1..n."""
    n = int(stored[-1, 0]) if len(stored) else 0
    return bucket_edges(n, len(stored)) if n > len(stored) else None


def plan_prefix(stored: np.ndarray, k: int) -> tuple[int, int, bool]:
    """(steps to train, stored rows to compare, whether the rows are bucket means) for the
    first `k` steps of a run whose stored series is `stored`."""
    edges = stored_edges(stored)
    if edges is None:
        return min(k, len(stored)), min(k, len(stored)), False
    m = max(1, int(np.searchsorted(edges, k)))  # the first buckets that k steps reach
    return int(edges[m]), m, True


def expected_rows(fresh: np.ndarray, stored: np.ndarray, k: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(rows today's code gives, rows stored) for the compared prefix."""
    upto, rows, bucketed = plan_prefix(stored, k)
    if bucketed:
        edges = stored_edges(stored)[:rows + 1]
        mine = bucket_rows(fresh, edges) if len(fresh) >= upto else fresh[:0]
    else:
        mine = fresh[:rows]
    return mine, stored[:rows]


class StopAfter:
    """A listener that stops the run once it has reported `n` steps (the trainer reports
    steps a few at a time, so it trains a few more: they are not compared)."""

    def __init__(self, n: int):
        self.n, self.stop = n, threading.Event()

    def __call__(self, e) -> None:
        if e.kind == "step" and e.iteration >= self.n:
            self.stop.set()


def retrain_prefix(cfg, steps: int):
    """The RunView of the first `steps` steps (at least) of `cfg`, trained as the build
    trained it, on the CPU."""
    from bnviz.runs.training import train_record
    stopper = StopAfter(max(1, steps))
    with one_thread():
        return train_record(cfg.replace(device="cpu"), SOURCE, [stopper],
                            stopper.stop).view()


# Across CPUs the same code rounds differently (torch picks AVX2 or AVX-512 kernels, the fused
# kernels are built with -march=native): the first step's loss differs in the 7th digit, and at
# lr 1 such differences grow to 1e-4 in 20 steps. An entry trained on another CPU is compared
# on its first CROSS_STEPS steps to CROSS_REL (relative; batch accuracy to one example), which
# still catches any change to the init, the data order, the model or the maths; on the CPU
# that trained it, bit for bit.
CROSS_STEPS = 3
CROSS_REL = 1e-5
# Some runs amplify that rounding far more than most: BatchNorm over 2 examples, SGD at batch 4,
# BN after ReLU at lr 1 differ by 1e-4 to 1e-2 after one to 75 updates on another CPU
# (`bnviz library check --all` on an Intel Xeon, of entries trained on an AMD EPYC: 17 of 410
# entries, every one with its first step within CROSS_REL). A change of the maths moves every
# run; rounding moves those few. So on another CPU an entry whose first step matches but whose
# later steps (or first bucket mean) differ has drifted, not gone stale; drift is a problem
# only when more than DRIFT_SHARE of the entries from other CPUs have drifted.
DRIFT_SHARE = 0.5


def cpu_signature() -> str:
    """The CPU as the floats see it: its model and the kernels torch dispatches to."""
    import platform

    import torch
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f
                          if ln.startswith("model name")), "")
    except OSError:
        pass
    return (f"{platform.machine()}, {model or platform.processor() or '?'}, "
            f"{torch.backends.cpu.get_cpu_capability()}")


def same_cpu(stored) -> bool:
    """Whether `stored` was trained on a CPU like this one (unknown for older entries)."""
    return bool(stored.info.get("cpu")) and stored.info["cpu"] == cpu_signature()


def compare(name: str, stored, fresh, k: int, rel: float = 0.0) -> str | None:
    """None when the retrained prefix gives the stored rows exactly (or, with `rel` > 0,
    losses within that relative difference and batch accuracies within one example), else
    what differs."""
    ended = stored.status in ("diverged", "failed")
    upto, rows, bucketed = plan_prefix(stored.steps, k)
    if ended and len(stored.steps) < k and not bucketed:  # it ended inside the prefix
        if fresh.status != stored.status or len(fresh.steps) != len(stored.steps):
            return (f"stale numbers: {name}: stored {stored.status} after "
                    f"{len(stored.steps)} steps, retrained {fresh.status} after "
                    f"{len(fresh.steps)} steps ({fresh.reason or 'no reason'})")
    if len(fresh.steps) < upto:
        return (f"stale numbers: {name}: the retrained run ended after {len(fresh.steps)} "
                f"steps ({fresh.status}: {fresh.reason}), the stored one has {upto}")
    edges = stored_edges(stored.steps)
    if edges is not None and not np.array_equal(stored.steps[:, 0], edges[1:]):
        return (f"unreadable series: {name}: its {len(stored.steps)} rows are not at the "
                f"bucket ends that averaging {int(stored.steps[-1, 0])} steps gives")
    mine, theirs = (a.astype(np.float32) for a in expected_rows(fresh.steps, stored.steps, k))
    if rel:
        one = 1.0 / max(1, stored.config.batch_size)
        off = (np.abs(mine[:, 2] - theirs[:, 2]) > rel * np.abs(theirs[:, 2])) | \
            (np.abs(mine[:, 3] - theirs[:, 3]) > one + 1e-6) | (mine[:, 0] != theirs[:, 0])
        bad = np.flatnonzero(off)
    else:
        bad = np.flatnonzero((mine != theirs).any(axis=1))
    if not len(bad):
        return None
    i = int(bad[0])
    what = f"bucket {i + 1} (steps up to {int(theirs[i, 0])})" if bucketed \
        else f"step {int(theirs[i, 0])}"
    unit = "bucket means" if bucketed else "steps"
    return (f"stale numbers: {name}: {len(bad)} of {rows} {unit} differ; first at {what}: "
            f"loss stored {theirs[i, 2]:.9g}, retrained {mine[i, 2]:.9g}; batch acc stored "
            f"{theirs[i, 3]:.9g}, retrained {mine[i, 3]:.9g}")


def sample(entries: list, questions: Iterable, rng: random.Random) -> list:
    """A few entries covering every question at least once (an entry that answers several
    questions covers each), chosen with `rng`: CI checks a different few each run, and every
    question each time."""
    chosen: list = []
    for q in questions:
        mine = [e for e in entries if any(key == q.key for key, _ in e.answers)]
        if mine and not any(e in chosen for e in mine):
            chosen.append(rng.choice(mine))
    return chosen


def environment_notes(stored) -> list[str]:
    """What differs between here and where `stored` was trained, that could change the
    floats without any change to bnviz (said when a check fails)."""
    import platform
    import os

    import torch

    from bnviz.speed import fused
    notes = []
    here = fused.status()
    if str(stored.summary.get("fused", "")) != here:
        notes.append(f"the fused CPU kernels were {stored.summary.get('fused', '?')!r} for "
                     f"the stored runs and are {here!r} here")
    torch_here = torch.__version__.split("+")[0]
    if stored.info.get("torch_version") not in (None, torch_here):
        notes.append(f"the runs were trained with torch {stored.info['torch_version']}, "
                     f"this is torch {torch_here}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    if stored.info.get("machine") not in (None, machine):
        notes.append(f"they were trained on {stored.info['machine']}, this is {machine}")
    return notes


def judge(name: str, stored, fresh, k: int, exact: bool) -> tuple[str, str | None]:
    """("ok" | "STALE" | "DRIFT", what differs) for a retrained prefix: bit for bit where
    `exact`, else to CROSS_REL, where a difference after a first step (or in a first bucket
    mean) that matches is drift."""
    problem = compare(name, stored, fresh, k, 0.0 if exact else CROSS_REL)
    if problem is None:
        return "ok", None
    if not exact and (plan_prefix(stored.steps, 1)[2]
                      or compare(name, stored, fresh, 1, CROSS_REL) is None):
        return "DRIFT", problem
    return "STALE", problem


def drift_problem(drifted: int, cross: int) -> str | None:
    """A problem when more than DRIFT_SHARE of the `cross` entries from other CPUs drifted."""
    if drifted <= DRIFT_SHARE * cross:
        return None
    return (f"stale numbers: {drifted} of {cross} entries trained on other CPUs (or in a "
            "batch) differ after their first step: rounding moves a few runs, a change of the "
            "update (backward, optimiser, schedule) moves them all")


def check_entries(lib, entries: list, k: int, out: TextIO) -> list[str]:
    """Retrain the first `k` steps of each entry and compare; returns the problems."""
    problems: list[str] = []
    drifts: list[str] = []
    cross = 0  # entries compared across CPUs (or batched): to a tolerance
    t_all = time.perf_counter()
    stale = None
    print(f"retraining the first {k} steps of {len(entries)} entr"
          f"{'y' if len(entries) == 1 else 'ies'} (one torch thread, CPU):", file=out, flush=True)
    for e in entries:
        stored = lib.get(e.config)
        name = f"{e.name} (run {stored.run_id})"
        # A run trained in a batch (bnviz.speed.batched_trainer) summed in other kernels'
        # order: it is compared with the run trained alone to float tolerance, as across CPUs.
        batched = bool(stored.summary.get("batched"))
        exact = same_cpu(stored) and not batched
        kk = k if exact else min(k, CROSS_STEPS)
        upto, rows, bucketed = plan_prefix(stored.steps, kk)
        t0 = time.perf_counter()
        fresh = retrain_prefix(e.config, max(kk, upto))
        verdict, problem = judge(name, stored, fresh, kk, exact)
        cross += not exact
        secs = time.perf_counter() - t0
        what = (f"{rows} bucket means ({upto} steps)" if bucketed else
                f"{rows} steps" if rows else f"no steps, {fresh.status}")
        if batched:
            what += f", {stored.summary['batched']}: within {CROSS_REL:g}"
        elif not exact:
            what += (f", trained on another CPU ({stored.info.get('cpu') or 'not recorded'}): "
                     f"within {CROSS_REL:g}")
        print(f"  {verdict:5s} {e.name}: {what}, {secs:.1f} s", file=out, flush=True)
        if verdict == "DRIFT":
            drifts.append(problem.replace("stale numbers: ", "", 1))
        elif problem:
            problems.append(problem)
            stale = stored
    print(f"  {len(entries) - len(problems) - len(drifts)} of {len(entries)} match, "
          f"{time.perf_counter() - t_all:.0f} s", file=out)
    if drifts:
        print(f"  drifted (first step within {CROSS_REL:g}, later ones apart: rounding on "
              f"another CPU or in a batch, amplified): {len(drifts)} of {cross} entries "
              "compared to a tolerance", file=out)
        for d in drifts:
            print(f"    {d}", file=out)
        if (problem := drift_problem(len(drifts), cross)) is not None:
            problems.append(problem)
            stale = stale or lib.get(entries[0].config)
    if problems:
        notes = environment_notes(stale)
        problems.append(
            "today's code no longer trains these entries to their stored numbers: the "
            "trainer, the init, the model, a norm, the data or its order changed what a run "
            "computes. Undo the change, or, if it is meant, build a new library from nothing "
            "(`python -m bnviz library build --path NEW.sqlite --no-store`, about 80 minutes "
            "on 2 cores) and ship it" + (f". Note: {'; '.join(notes)}" if notes else ""))
    return problems
