"""Run a grid of configs headless (CLI), one after another, into the run store."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from . import data as data_mod
from .experiments import GridPoint, result_row
from .jobs import new_run_id
from .record import RunRecord
from .store import RunStore
from .trainer import Trainer


def run_grid(points: list[GridPoint], store: RunStore | None, reuse: bool = True,
             out: Path | None = None, log=sys.stderr) -> pd.DataFrame:
    rows = []
    for i, p in enumerate(points, 1):
        view = None
        if reuse and store is not None:
            found = store.find_finished(p.config.config_id(), p.config.seed,
                                        data_mod.resolve_source(p.config.dataset))
            view = store.load(found) if found else None
        if view is None:
            rec = RunRecord(new_run_id(), p.config, session="cli")
            Trainer(p.config, [rec]).run()
            view = rec.view()
            if store is not None:
                store.save(view)
            how = "trained"
        else:
            how = "reused from the run store"
        row = result_row(p.label, view)
        rows.append(row)
        print(f"[{i}/{len(points)}] {p.label}: {view.status}, test acc {row['test_acc']:.3f}, "
              f"train acc {row['train_acc']:.3f} ({how}, run {view.run_id})", file=log,
              flush=True)
    table = pd.DataFrame(rows)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "results.csv", index=False)
    return table
