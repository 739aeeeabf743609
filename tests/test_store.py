import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bnviz.config import KNOB, config_from_dict, make_config
from bnviz.runs import store as store_mod
from bnviz.runs.record import RunRecord
from bnviz.runs.store import SCHEMA_VERSION, RunStore, StoreError
from bnviz.trainer import train
from tests.conftest import ROOT


def trained_record(tiny, run_id="r1", **kw):
    rec = RunRecord(run_id, make_config(**tiny, eval_every=4, **kw), session="s")
    train(rec.config, [rec])
    return rec


def same_value(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def test_round_trip_keeps_every_field(tmp_path, tiny):
    store = RunStore(tmp_path / "runs.sqlite")
    v = trained_record(tiny).view()
    store.save(v)
    back = RunStore(tmp_path / "runs.sqlite").load("r1")  # a fresh connection, as after restart
    assert back.config == v.config and back.status == "finished" and back.session == "s"
    assert back.summary.keys() == v.summary.keys()
    assert all(same_value(back.summary[k], x) for k, x in v.summary.items())  # nan == nan here
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
            for i in range(15):  # as a runner saves a run: queued, then its final state
                run_id = f"w{k}-{i}"
                store.save(dataclasses.replace(v, run_id=run_id, status="queued"))
                store.save(dataclasses.replace(v, run_id=run_id))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    runs = store.list_runs(limit=1000)
    assert len(runs) == 90 and {r["status"] for r in runs} == {"finished"}
    assert store.integrity() == "ok"


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


# -- schema versions and migrations ---------------------------------------------------------
V0_FIXTURE = ROOT / "tests" / "data" / "runs-v0.sqlite"
V0_RUNS = {"v0-bn-seed0", "v0-bn-seed1", "v0-nobn-lr09"}


def v0_copy(tmp_path, name="runs.sqlite"):
    dst = tmp_path / name
    shutil.copyfile(V0_FIXTURE, dst)
    return dst


def old_config_id(cfg_dict):
    """The id scheme of schema version 0: every knob but seed and device."""
    d = {k: v for k, v in cfg_dict.items() if k not in ("seed", "device")}
    return hashlib.sha1(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
                        ).hexdigest()[:12]


def raw_rows(path):
    """The runs as stored, read with plain sqlite3 and never written (the fixture itself as
    immutable: no -wal/-shm files appear beside it)."""
    immutable = "&immutable=1" if Path(path) == V0_FIXTURE else ""
    c = sqlite3.connect(f"file:{path}?mode=ro{immutable}", uri=True)
    c.row_factory = sqlite3.Row
    try:
        version = c.execute("PRAGMA user_version").fetchone()[0]
        rows = {r["run_id"]: dict(r) for r in c.execute(
            "SELECT r.*, s.steps, s.evals, s.epochs, s.snapshots FROM runs r "
            "JOIN series s USING (run_id)")}
    finally:
        c.close()
    return version, rows


def history(path):
    c = sqlite3.connect(path)
    try:
        return [tuple(r) for r in c.execute(
            "SELECT version, by, note FROM schema_history ORDER BY version")]
    finally:
        c.close()


def test_v0_fixture_is_what_its_docstring_says():
    assert V0_FIXTURE.stat().st_size < 300_000
    version, rows = raw_rows(V0_FIXTURE)
    assert version == 0 and set(rows) == V0_RUNS
    for r in rows.values():
        assert r["status"] == "finished" and r["data_source"] == "subset"
        assert r["config_id"] == old_config_id(json.loads(r["config"]))


def test_old_database_is_upgraded_in_place(tmp_path):
    """A store from before versioning opens upgraded: version current, ids re-keyed from the
    stored configs, everything else as it was.

    tests/data/runs-v0.sqlite: a run store written by the code before schema versioning.

    Made with the code of commit b3c87d37d36f61da430f3fdedb22aadb0efe304b (store, config, record
    and trainer as they were; PRAGMA user_version 0, config_id hashing every knob but seed and
    device), imported from a throwaway copy outside this checkout:

        git archive b3c87d37d36f61da430f3fdedb22aadb0efe304b bnviz | tar -x -C /tmp/old
        # then, with sys.path[0] = "/tmp/old" (checked: bnviz.__file__ under /tmp/old):
        tiny = dict(dataset="subset", train_size=256, batch_size=64, epochs=1, device="cpu")
        store = RunStore("runs-v0.sqlite")
        for run_id, kw in [("v0-bn-seed0", dict(seed=0)), ("v0-bn-seed1", dict(seed=1)),
                           ("v0-nobn-lr09", dict(seed=0, norm="none", lr=0.9, conv1_padding=2))]:
            rec = RunRecord(run_id, make_config(**tiny, **kw), session="fixture")
            train(rec.config, [rec])
            store.save(rec.view())
        store.close()   # the last close checkpoints the WAL: one 48 KiB file

    Three finished runs of 4 steps, 1 evaluation and 2 snapshots each. Tests open copies only.
    """
    _, before = raw_rows(V0_FIXTURE)
    db = v0_copy(tmp_path)
    store = RunStore(db)
    assert store.schema_version() == SCHEMA_VERSION == 4
    assert [v for v, _, _ in history(db)] == [1, 2, 3, 4]
    assert "3 runs re-keyed" in history(db)[1][2]
    assert "dropped runs.label" in history(db)[2][2]
    assert "re-encoded as one compressed block: 3 runs" in history(db)[3][2]
    assert store.integrity() == "ok"
    _, after = raw_rows(db)
    assert set(after) == V0_RUNS
    for run_id, old in before.items():
        v = store.load(run_id)
        # the full config survives; the id is re-keyed from it under the new scheme
        stored, now = json.loads(old["config"]), v.config.to_dict()
        assert {k: now[k] for k in stored} == stored
        # knobs added since the fixture was written take their defaults
        assert all(now[k] == KNOB[k].default for k in now.keys() - stored.keys())
        assert v.config == config_from_dict(json.loads(old["config"]))
        new_id = v.config.config_id()
        assert new_id != old["config_id"] and after[run_id]["config_id"] == new_id
        assert store.find_finished(new_id, v.config.seed, "subset") == run_id
        assert store.find_finished(old["config_id"], v.config.seed) is None
        assert run_id in {r["run_id"] for r in store.list_runs(config_id=new_id)}
        # every column but config_id, the dropped label and the re-encoded snapshots (their
        # numbers compared below), and every series, is as it was
        assert old["label"] == "" and "label" not in after[run_id]
        assert old["snapshots"][:2] == b"PK"  # the npz the fixture's bnviz wrote
        assert after[run_id]["snapshots"].startswith(store_mod._SNAP_MAGIC)
        for col in old:
            if col not in ("config_id", "label", "snapshots"):
                assert after[run_id][col] == old[col], col
        assert v.status == "finished" and v.session == "fixture"
        assert v.summary == json.loads(old["summary"]) and v.info == json.loads(old["info"])
        assert len(v.steps) == 4
        assert np.array_equal(v.steps, np.load(io.BytesIO(old["steps"])).astype(np.float64))
        assert v.evals == json.loads(old["evals"]) and len(v.evals) == 1
        assert v.epochs == json.loads(old["epochs"])
        snaps = store_mod._unpack_snapshots(old["snapshots"])
        assert len(v.snapshots) == len(snaps) == 2
        for (i1, e1, l1), (i2, e2, l2) in zip(v.snapshots, snaps):
            assert (i1, e1) == (i2, e2) and l1.keys() == l2.keys()
            for site in l1:
                assert l1[site].keys() == l2[site].keys()
                for stat in l1[site]:
                    assert np.array_equal(l1[site][stat], l2[site][stat])
    # the two seeds of one config share the new id; the other config does not
    ids = {run_id: store.load(run_id).config.config_id() for run_id in V0_RUNS}
    assert ids["v0-bn-seed0"] == ids["v0-bn-seed1"] != ids["v0-nobn-lr09"]


def test_second_open_does_nothing(tmp_path, monkeypatch):
    db = v0_copy(tmp_path)
    RunStore(db).close()
    hist = history(db)
    _, rows = raw_rows(db)
    calls = []
    monkeypatch.setattr(store_mod, "MIGRATIONS",
                        [lambda c, i=i: calls.append(i) for i in range(SCHEMA_VERSION)])
    store = RunStore(db)
    assert calls == [] and store.schema_version() == SCHEMA_VERSION
    assert history(db) == hist and raw_rows(db)[1] == rows


def test_new_file_starts_at_the_current_version(tmp_path):
    store = RunStore(tmp_path / "new.sqlite")
    assert store.schema_version() == SCHEMA_VERSION
    assert [v for v, _, _ in history(tmp_path / "new.sqlite")] == list(
        range(1, SCHEMA_VERSION + 1))


def v2_copy(tmp_path, monkeypatch):
    """A store as the code of schema version 2 left it (runs.label still there)."""
    db = v0_copy(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:2])
        m.setattr(store_mod, "SCHEMA_VERSION", 2)
        RunStore(db).close()
    return db


def columns(path):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[1] for r in c.execute("PRAGMA table_info(runs)")}
    finally:
        c.close()


def test_a_version_2_store_loses_only_the_unused_label_column(tmp_path, monkeypatch):
    db = v2_copy(tmp_path, monkeypatch)
    _, before = raw_rows(db)
    assert "label" in columns(db) and [v for v, _, _ in history(db)] == [1, 2]
    store = RunStore(db)
    assert store.schema_version() == SCHEMA_VERSION == 4 and "label" not in columns(db)
    _, after = raw_rows(db)
    # v4 re-encodes the snapshots (the same numbers); nothing else changes
    drop = ("label", "snapshots")
    assert {k: {c: v for c, v in r.items() if c != "snapshots"} for k, r in after.items()} == \
        {k: {c: v for c, v in r.items() if c not in drop} for k, r in before.items()}
    for k in before:
        old, new = (store_mod._unpack_snapshots(r[k]["snapshots"]) for r in (before, after))
        assert [(i, e) for i, e, _ in old] == [(i, e) for i, e, _ in new] and len(old) == 2
        for (_, _, a), (_, _, b) in zip(old, new):
            assert {(s, t): v.tobytes() for s in a for t, v in a[s].items()} == \
                {(s, t): v.tobytes() for s in b for t, v in b[s].items()}
    assert {r["run_id"] for r in store.list_runs()} == V0_RUNS


def test_read_only_opens_version_2_files_as_they_are(tmp_path, monkeypatch):
    """The shipped library is read-only (never migrated): it must still open,
    and so must any file from READS_FROM on; older ones are refused with the reason."""
    from bnviz.library import LIBRARY_FILE
    assert store_mod.READS_FROM == 2
    lib = RunStore(LIBRARY_FILE, readonly=True)
    some = lib.list_runs(limit=3)
    assert len(some) == 3 and lib.load(some[0]["run_id"]).status == some[0]["status"]
    db = v2_copy(tmp_path, monkeypatch)
    ro = RunStore(db, readonly=True)
    assert ro.schema_version() == 2 and "label" in columns(db)  # read, not migrated
    assert ro.load("v0-bn-seed0").status == "finished"
    old = v0_copy(tmp_path, "v0.sqlite")
    with pytest.raises(StoreError, match=r"schema version 0, this bnviz reads 2 to 4 "
                       r"read-only; rebuild it"):
        RunStore(old, readonly=True)
    assert raw_rows(old)[0] == 0  # left as it was


def test_file_from_a_newer_bnviz_is_refused_with_a_clear_message(tmp_path):
    db = v0_copy(tmp_path)
    RunStore(db).close()
    c = sqlite3.connect(db)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    _, rows = raw_rows(db)
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than "
                       rf"this bnviz knows \(up to {SCHEMA_VERSION}\).*Update bnviz"):
        RunStore(db)
    version, after = raw_rows(db)
    assert version == SCHEMA_VERSION + 1 and after == rows


def test_failed_migration_leaves_the_old_version(tmp_path, monkeypatch):
    db = v0_copy(tmp_path)

    def broken(c):
        c.execute("UPDATE runs SET config_id='half-done'")
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(store_mod, "MIGRATIONS", [store_mod.MIGRATIONS[0], broken,
                                                  *store_mod.MIGRATIONS[2:]])
    with pytest.raises(StoreError, match="disk I/O error"):
        RunStore(db)
    version, rows = raw_rows(db)
    assert version == 1 and "half-done" not in {r["config_id"] for r in rows.values()}
    monkeypatch.undo()
    assert RunStore(db).schema_version() == SCHEMA_VERSION


def test_concurrent_openers_of_an_old_file_migrate_once(tmp_path):
    """Several programs open the same old file at once; the re-keying migration is slowed so
    they overlap. Each migration runs exactly once and every program opens the store."""
    db = v0_copy(tmp_path)
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from bnviz.runs import store as s\n"
            "slow = s.MIGRATIONS[1]\n"
            "s.MIGRATIONS[1] = lambda c: (time.sleep(1.0), slow(c))[1]\n"
            "print('ready', flush=True); sys.stdin.readline()\n"
            "print('version', s.RunStore(%r).schema_version(), flush=True)\n"
            % (str(ROOT), str(db)))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # all go at once
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == f"version {SCHEMA_VERSION}"
    assert [v for v, _, _ in history(db)] == list(range(1, SCHEMA_VERSION + 1))
    assert "3 runs re-keyed" in history(db)[1][2]
    store = RunStore(db)
    for run_id in V0_RUNS:
        cfg = store.load(run_id).config
        assert store.find_finished(cfg.config_id(), cfg.seed, "subset") == run_id


def test_writes_name_their_columns(tmp_path, tiny):
    """A later migration may add columns (in any place): saving and updating still work."""
    db = tmp_path / "db"
    RunStore(db).close()
    c = sqlite3.connect(db)
    c.execute("ALTER TABLE runs ADD COLUMN later TEXT NOT NULL DEFAULT 'x'")
    c.execute("ALTER TABLE series ADD COLUMN later BLOB")
    c.close()
    store = RunStore(db)
    v = trained_record(tiny).view()
    store.save(dataclasses.replace(v, status="running"))
    store.save(dataclasses.replace(v, reason="again"))  # saved again: replaced, not added
    back = store.load("r1")
    assert back.reason == "again" and np.allclose(back.steps, v.steps, atol=1e-6)
    # the one UPDATE: a run left running by a process that has exited
    store.save(dataclasses.replace(v, run_id="r2", status="running"))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    c = sqlite3.connect(db)
    c.execute("UPDATE runs SET owner=? WHERE run_id='r2'",
              (f"{store_mod.socket.gethostname()}:{gone}",))
    c.commit()
    c.close()
    assert store.mark_interrupted() == 1 and store.load("r2").status == "interrupted"
    assert len(store.list_runs()) == 2


def test_snapshots_round_trip_exactly_in_either_encoding():
    """The compact encoding gives back every array bit for bit (shape, float32), and a blob
    in the npz encoding of schema versions before 4 (written here with numpy directly, as
    that bnviz did) reads the same."""
    rng = np.random.default_rng(0)
    snaps = [(0, 0.0, {"conv1": {"gamma": rng.standard_normal(6).astype(np.float32),
                                 "beta": np.zeros(6, np.float32)},
                       "fc1": {"gamma": rng.standard_normal((2, 3)).astype(np.float32),
                               "scalar": np.float32(1.5)}}),
             (7, 0.4375, {}),
             (10, 1.0, {"fc1": {"gamma": np.array([np.nan, np.inf, -0.0], np.float32)}})]
    arrays = {"_index": np.array([(it, ep) for it, ep, _ in snaps]).reshape(-1, 2)}
    for i, (_, _, layers) in enumerate(snaps):
        for site, d in layers.items():
            for stat, v in d.items():
                arrays[f"{i}/{site}/{stat}"] = np.asarray(v, dtype=np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    compact = store_mod._pack_snapshots(snaps)
    assert compact.startswith(store_mod._SNAP_MAGIC)
    for blob in (compact, buf.getvalue()):
        back = store_mod._unpack_snapshots(blob)
        assert [(it, ep) for it, ep, _ in back] == [(0, 0.0), (7, 0.4375), (10, 1.0)]
        for (_, _, want), (_, _, got) in zip(snaps, back):
            assert list(got) == list(want)
            for site in want:
                assert list(got[site]) == list(want[site])
                for stat, v in want[site].items():
                    a = got[site][stat]
                    assert a.dtype == np.float32 and a.shape == np.shape(v)
                    assert a.tobytes() == np.asarray(v, np.float32).tobytes()
    assert store_mod._unpack_snapshots(store_mod._pack_snapshots([])) == []
    assert store_mod._unpack_snapshots(None) == []
