"""The results library: it answers every question page's default grid, it is checked against
today's code (CI runs the fast check), and runners serve from it without training."""
import json
import random
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from bnviz.config import Config
from bnviz.experiments import GridPoint
from bnviz.library import LIBRARY_FILE, Library, library_key
from bnviz.library import build as lb
from bnviz.library.catalog import LIBRARY_SEEDS, QUESTION, QUESTIONS, Question
from bnviz.runs.jobs import JobManager
from bnviz.runs.store import RunStore
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def lib():
    return Library(LIBRARY_FILE)


def check_cli(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "bnviz", "library", "check", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_library_check_passes_on_todays_code():
    """CI's fast check: every page's default grid present with its seeds, every stored
    config valid and under the id today's code computes."""
    r = check_cli()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "library check: ok" in r.stdout


def test_every_question_has_five_paired_seeds_of_every_configuration(lib):
    for q in QUESTIONS:
        assert q.seeds >= 5
        for p in q.points():
            v = lib.get(p.config)
            assert v is not None, (q.key, p.label, p.config.seed)
            assert v.status in ("finished", "diverged", "failed")
            assert v.config == library_key(p.config)  # the full config, kept
            assert v.info["source"] == "library" and v.info["bnviz_version"]
            if v.config.dataset == "full":
                assert v.info["data_source"] == "full" and v.info["n_train"] == 60000


def test_the_library_is_small_enough_to_ship():
    assert LIBRARY_FILE.stat().st_size < 20e6
    for extra in ("-wal", "-shm", "-journal"):  # sealed: one file, readable read-only
        assert not LIBRARY_FILE.with_name(LIBRARY_FILE.name + extra).exists()


def test_a_changed_knob_default_makes_check_name_the_stale_entries(tmp_path):
    """A copy of the package whose momentum default is 0.2: every stored config (momentum
    0.1) now hashes differently, and every page's default grid asks for 0.2."""
    pkg = tmp_path / "bnviz"
    shutil.copytree(ROOT / "bnviz", pkg, ignore=shutil.ignore_patterns(
        "runs.sqlite", "__pycache__", "*.so"))
    cfg = pkg / "config.py"
    text = cfg.read_text()
    old = 'momentum: float = knob(0.1,'
    assert old in text
    cfg.write_text(text.replace(old, 'momentum: float = knob(0.2,'))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    r = check_cli("--path", str(LIBRARY_FILE), env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "stale entry: ablation · no BN, seed 3" in out
    assert "stale entry: presets · d2l-lenet-bn, seed 0" in out
    # the new default config hashes as the old one did; its stored run is not an answer
    assert "missing: ablation · all four BN layers, seed 0" in out
    assert "library build" in out  # says what to do


def test_runner_serves_the_library_without_training(tmp_path, lib):
    """A page's default config (dataset 'auto', even on a subset-only machine) is answered
    by the library: submit returns the stored run, nothing is queued."""
    q = QUESTION["ablation"]
    mgr = JobManager(workers=1, store=RunStore(tmp_path / "runs.sqlite"), library=lib)
    try:
        cfg = q.make(Config().replace(**q.settings))[1].config  # "no BN", seed 0, auto
        assert cfg.dataset == "auto"
        run_id = mgr.submit(cfg, session="s")
        v = mgr.get(run_id)
        assert v.info["source"] == "library" and v.status == "finished"
        assert mgr.stats()["queued"] == 0 and mgr.stats()["running"] == 0
        assert mgr.find(cfg).run_id == run_id
        assert mgr.find(cfg, library=False) is None  # nothing of this server's own
        other = cfg.replace(lr=0.5)
        assert mgr.find(other) is None  # another question: no stored answer
    finally:
        mgr.shutdown()


def test_library_numbers_match_an_independent_reading_of_the_file(lib):
    """The page's answer (runs_table → summarize) against the raw rows read with sqlite3."""
    from bnviz.runs.results import summarize
    s = summarize(lb.answer(lib, QUESTION["fluctuation"]))
    c = sqlite3.connect(f"file:{LIBRARY_FILE}?mode=ro&immutable=1", uri=True)
    accs = [json.loads(summary)["test_acc_precise"] for summary, config in c.execute(
        "SELECT summary, config FROM runs") if json.loads(config)["compare_eval"]
        and json.loads(config)["dataset"] == "full"]
    assert len(accs) == LIBRARY_SEEDS
    a = np.array(accs)
    half = 2.7764451051977987 * a.std(ddof=1) / np.sqrt(len(a))  # t(0.975, 4)
    assert s.test_acc_precise.iloc[0] == pytest.approx(a.mean(), abs=1e-12)
    assert s.test_acc_precise_ci.iloc[0] == pytest.approx(half, rel=1e-4)  # t to 5 digits


def test_downsampled_steps_are_bucket_means():
    steps = np.column_stack([np.arange(1, 1001), np.arange(1, 1001) / 100,
                             np.linspace(2, 0, 1000), np.linspace(0, 1, 1000)])
    out = lb.downsample_steps(steps, 10)
    assert out.shape == (10, 4)
    assert out[0, 0] == 100 and out[-1, 0] == 1000  # each row at its bucket's last step
    assert out[3, 2] == pytest.approx(steps[300:400, 2].mean())
    assert lb.downsample_steps(steps[:50], 100).shape == (50, 4)  # short runs kept whole


TINY = Question("tiny", "tiny", "a tiny grid", lambda b: [
    GridPoint("bn", b), GridPoint("no BN", b.replace(norm="none"))],
    {"dataset": "subset", "train_size": 256, "batch_size": 64, "epochs": 1}, seeds=2)


def test_build_resumes_copies_and_check_retrains_to_the_same_numbers(tmp_path, capsys):
    path = tmp_path / "lib.sqlite"
    user = RunStore(tmp_path / "user.sqlite")
    first = lb.train_one(TINY.points()[0].config.replace(dataset="subset"))
    user.save(first)  # already trained by this user: copied, not trained again
    r1 = lb.build(path, (TINY,), jobs=1, reuse=user, limit=1)
    assert (r1["copied"], r1["trained"]) == (1, 1)  # stopped after one trained run
    r2 = lb.build(path, (TINY,), jobs=1, reuse=user)
    assert (r2["present"], r2["copied"], r2["trained"]) == (2, 0, 2)  # resumed
    assert lb.check(path, (TINY,)) == []
    # every entry retrains to its stored numbers (CPU training is repeatable per seed)
    for seed in range(4):
        assert lb.check(path, (TINY,), retrain=True, rng=random.Random(seed)) == []
    # a tampered number is caught
    c = sqlite3.connect(path)
    for run_id, summary in c.execute("SELECT run_id, summary FROM runs").fetchall():
        s = json.loads(summary)
        s["test_acc_precise"] += 0.01
        c.execute("UPDATE runs SET summary=? WHERE run_id=?", (json.dumps(s), run_id))
    c.commit()
    c.close()
    problems = lb.check(path, (TINY,), retrain=True, rng=random.Random(0))
    assert problems and "test_acc_precise stored" in problems[0]


def test_findings_export_has_every_question(tmp_path, lib):
    dirs = lb.export(lib, tmp_path)
    assert {d.name for d in dirs} == {q.key for q in QUESTIONS}
    assert "seed 0:" in (tmp_path / "bias" / "loss_difference.txt").read_text()
