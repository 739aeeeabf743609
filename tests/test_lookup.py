"""The one lookup order (bnviz.runs.lookup): memory, then the user's store, then the results
library; each place matched its own way. Real store, real library."""
import dataclasses

from bnviz.library import LIBRARY_FILE, Library
from bnviz.library.catalog import QUESTION
from bnviz.runs import lookup
from bnviz.runs.store import RunStore


def test_memory_wins_over_the_store_which_wins_over_the_library(tmp_path):
    lib = Library(LIBRARY_FILE)
    cfg = QUESTION["ablation"].points()[1].config  # "no BN", seed 0, dataset auto
    answer = lib.get(cfg)
    assert lookup.find(cfg, library=lib) == (answer.run_id, lookup.LIBRARY)
    store = RunStore(tmp_path / "runs.sqlite")
    assert lookup.find(cfg, store=store, library=lib).where == lookup.LIBRARY  # store empty
    mine = dataclasses.replace(answer, run_id="mine", config=cfg, session="",
                               info={**answer.info, "source": "",
                                     "data_source": lookup.data_mod.resolve_source("auto")})
    store.save(mine)
    assert lookup.find(cfg, store=store, library=lib) == ("mine", lookup.STORE)
    older = dataclasses.replace(mine, run_id="old", created=1.0)
    newer = dataclasses.replace(mine, run_id="new", created=2.0)
    assert lookup.find(cfg, [older, newer], store, lib) == ("new", lookup.MEMORY)
    # the store matches config id, seed and the data it loads here; the library its config
    assert lookup.find(cfg.replace(seed=99), store=store, library=lib) is None
    assert lookup.find(cfg.replace(lr=0.5), store=store, library=lib) is None

