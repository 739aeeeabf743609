"""Run a grid of configs headless (CLI), one after another, into the run store."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bnviz.experiments import GridPoint, result_row
from bnviz.runs import lookup
from bnviz.runs.results import runs_table, summarize
from bnviz.runs.store import RunStore
from bnviz.runs.training import batches, spread, train_records
from bnviz.speed.batched import MAX_BATCH


def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def _train(configs) -> list:
    """One batch: a single run as today's Trainer trains it, several as one batched model."""
    return [r.view() for r in train_records(list(configs), session="cli")]


def run_grid(points: list[GridPoint], store: RunStore | None, reuse: bool = True,
             out: Path | None = None, log=None, jobs: int = 1, batch: int = MAX_BATCH,
             force_batch: bool = False) -> pd.DataFrame:
    """Train (or reuse) every point. jobs > 1 trains that many runs at once in separate
    processes, each with cores/jobs torch threads, so they never fight over a core. `log`:
    where progress lines go (None: sys.stderr as it is at the call, not at import — a test's
    captured stream may be closed by then). Runs that can train as one batched model and
    for which it pays (bnviz.runs.training.batches) train so, at most `batch` per model (1:
    each alone, as before batching; `force_batch`: batch where it does not pay too)."""
    log = log if log is not None else sys.stderr
    stored: dict[int, object] = {}
    library = None
    if reuse:
        from bnviz.library import open_library
        library = open_library()
    for i, p in enumerate(points):
        if not reuse:
            break
        found = lookup.find(p.config, store=store, library=library)
        if found is not None:  # the library's run is what the pages show
            view = (library if found.where == lookup.LIBRARY else store).load(found.run_id)
            if view is not None:
                stored[i] = view
    todo = [i for i in range(len(points)) if i not in stored]
    groups = [[todo[j] for j in g] for g in spread(
        batches([points[i].config for i in todo], batch, force_batch), jobs)]
    trained: dict[int, object] = {}
    jobs = min(jobs, len(groups))  # fewer batches than processes: more threads for each
    if jobs > 1:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor
        threads = max(1, (os.cpu_count() or 2) // jobs)
        with ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            for g, views in zip(groups, pool.map(_train, [[points[i].config for i in g]
                                                           for g in groups])):
                trained.update(zip(g, views))
    else:
        for g in groups:
            trained.update(zip(g, _train([points[i].config for i in g])))
    views = []
    for i, p in enumerate(points, 1):
        view = stored.get(i - 1)
        how = "from the results library" if view is not None and \
            view.info.get("source") == "library" else "reused from the run store"
        if view is None:
            view = trained[i - 1]
            how = view.summary.get("batched") or "trained"
            if store is not None:
                store.save(view)
        views.append(view)
        row = result_row(p.label, view)
        print(f"[{i}/{len(points)}] {p.label}, seed {p.config.seed}: {view.status}, "
              f"test acc {row['test_acc']:.3f}, train acc {row['train_acc']:.3f} ({how}, "
              f"run {view.run_id})", file=log, flush=True)
    table = runs_table(points, views)
    table.attrs["views"] = {v.run_id: v for v in views}  # for readings that need the curves
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "results.csv", index=False)
        summarize(table).to_csv(out / "summary.csv", index=False)
        # Every evaluation of every run (probe metrics such as the weight norms included).
        pd.concat([v.evals_frame().assign(run=p.label, arm=p.arm, seed=p.config.seed,
                                          run_id=v.run_id) for p, v in zip(points, views)],
                  ignore_index=True).to_csv(out / "evals.csv", index=False)
    return table
