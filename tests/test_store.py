import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from bnviz.config import make_config
from bnviz.runs.record import RunRecord
from bnviz.runs.store import RunStore, StoreError
from bnviz.trainer import train
from tests.conftest import ROOT


def trained_record(tiny, run_id="r1", **kw):
    rec = RunRecord(run_id, make_config(**tiny, eval_every=4, **kw), session="s")
    train(rec.config, [rec])
    return rec


def test_round_trip_keeps_every_field(tmp_path, tiny):
    store = RunStore(tmp_path / "runs.sqlite")
    v = trained_record(tiny).view()
    store.save(v)
    back = RunStore(tmp_path / "runs.sqlite").load("r1")  # a fresh connection, as after restart
    assert back.config == v.config and back.status == "finished" and back.session == "s"
    assert back.summary == v.summary
    assert back.info == v.info
    assert np.allclose(back.steps, v.steps, atol=1e-6)
    assert back.evals == v.evals and back.epochs == v.epochs
    assert len(back.snapshots) == len(v.snapshots)
    for (i1, e1, l1), (i2, e2, l2) in zip(back.snapshots, v.snapshots):
        assert i1 == i2 and e1 == e2 and l1.keys() == l2.keys()
        for site in l1:
            for stat in l1[site]:
                assert np.array_equal(l1[site][stat], l2[site][stat])
    assert store.integrity() == "ok"


def test_find_finished_reuses_same_config_and_seed(tmp_path, tiny):
    store = RunStore(tmp_path / "db")
    v = trained_record(tiny).view()
    store.save(v)
    assert store.find_finished(v.config.config_id(), v.config.seed, "subset") == "r1"
    assert store.find_finished(v.config.config_id(), v.config.seed + 1) is None
    assert store.find_finished(v.config.config_id(), v.config.seed, "full") is None


def test_concurrent_writers(tmp_path, tiny):
    store = RunStore(tmp_path / "db")
    v = trained_record(tiny).view()
    errors = []

    def writer(k):
        try:
            for i in range(15):
                rec = RunRecord.from_view(v)
                rec.run_id = f"w{k}-{i}"
                store.save(rec.view())
                store.set_status(rec.run_id, "finished")
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list_runs(limit=1000)) == 90 and store.integrity() == "ok"


def test_run_left_by_a_dead_process_is_marked_interrupted(tmp_path, tiny):
    db = tmp_path / "db"
    # a real second process saves a 'running' run and is killed before it finishes
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from bnviz.runs.store import RunStore; from bnviz.runs.record import RunRecord\n"
            "from bnviz.config import make_config\n"
            "r = RunRecord('half', make_config(dataset='subset')); r.status = 'running'\n"
            "RunStore(%r).save(r.view()); print('saved', flush=True); time.sleep(60)"
            % (str(ROOT), str(db)))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "saved"
    store = RunStore(db)
    assert store.mark_interrupted() == 0  # its owner is alive: not ours to touch
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert store.mark_interrupted() == 1
    run = store.load("half")
    assert run.status == "interrupted" and "server stopped" in run.reason


def test_corrupt_database_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match="corrupt|cannot be used"):
        RunStore(bad)
