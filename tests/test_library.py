"""The results library: it answers every question page's default grid, it is checked against
today's code (CI runs the fast check), and runners serve from it without training."""
import io
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from bnviz.config import Config
from bnviz.experiments import GridPoint
from bnviz.library import LIBRARY_FILE, Library, bnviz_version, library_key
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


def test_check_steps_flag_is_checked_and_zero_retrains_nothing():
    bad = check_cli("--steps", "-1")
    assert bad.returncode == 2 and "--steps must be 0 or more" in bad.stderr
    fast = check_cli("--steps", "0", "--only", "bias")
    assert fast.returncode == 0 and "retraining" not in fast.stdout, fast.stdout + fast.stderr


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
                # a fine-tuning run trains on one half, then on the other (bnviz.finetune)
                half = v.config.finetune_epochs > 0
                assert v.info["data_source"] == "full"
                assert v.info["n_train"] == (30000 if half else 60000)


def test_the_library_is_small_enough_to_ship():
    # 17 question pages; the runs that record distributions or probes carry more per run
    assert LIBRARY_FILE.stat().st_size < 30e6
    for extra in ("-wal", "-shm", "-journal"):  # sealed: one file, readable read-only
        assert not LIBRARY_FILE.with_name(LIBRARY_FILE.name + extra).exists()


def changed_copy(tmp_path, file: str, old: str, new: str) -> dict:
    """A copy of the package with one line of `file` changed; returns the environment that
    imports it (the data and kernel cache shared with this test run)."""
    pkg = tmp_path / "bnviz"
    shutil.copytree(ROOT / "bnviz", pkg, ignore=shutil.ignore_patterns(
        "runs.sqlite", "__pycache__", "*.so"))
    path = pkg / file
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path),
            "BNVIZ_CACHE_DIR": os.environ["BNVIZ_CACHE_DIR"]}


def test_a_changed_knob_default_makes_check_name_the_stale_entries(tmp_path):
    """A copy of the package whose momentum default is 0.2: every stored config (momentum
    0.1) now hashes differently, and every page's default grid asks for 0.2."""
    env = changed_copy(tmp_path, "config.py", 'momentum: float = knob(0.1,',
                       'momentum: float = knob(0.2,')
    r = check_cli("--path", str(LIBRARY_FILE), env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "stale entry: ablation · no BN, seed 3" in out
    assert "stale entry: presets · d2l-lenet-bn, seed 0" in out
    # the new default config hashes as the old one did; its stored run is not an answer
    assert "missing: ablation · all four BN layers, seed 0" in out
    assert "library build" in out  # says what to do


def test_a_one_line_change_to_the_weight_init_makes_check_name_the_stale_entries(tmp_path):
    """A copy of the package whose Xavier init has gain 1.01 instead of 1: every config id is
    the same, so only retraining can tell, and it names every sampled entry whose numbers
    depend on the weights. Two batch-1 entries cannot: nn.BatchNorm1d refuses the first step
    either way, and after BN of one example every feature is 0, so the from-scratch BN's
    logits are the last layer's bias alone (question 1's "we learn nothing")."""
    env = changed_copy(tmp_path, "model.py",
                       "nn.init.xavier_uniform_(m.weight, generator=wgen)",
                       "nn.init.xavier_uniform_(m.weight, gain=1.01, generator=wgen)")
    r = check_cli("--path", str(LIBRARY_FILE), "--sample-seed", "0", env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "stale entry" not in out and "missing" not in out  # ids and presence still fine
    stale = re.findall(r"^stale numbers: (.+?, seed \d) \(run \w+\): .*? differ; first at "
                       r"(?:step 1|bucket 1 \(steps up to \d+\)): loss stored", out, re.M)
    flagged = re.findall(r"^  STALE (.+?, seed \d):", out, re.M)
    passed = re.findall(r"^  ok    (.+?), seed \d:", out, re.M)
    assert len(stale) >= 5 and sorted(stale) == sorted(flagged), out
    assert set(passed) <= {"batch1 · nn.BatchNorm1d at batch 1",
                           "batch1 · BN from scratch at batch 1"}, out
    assert "Undo the change" in out
    if lb.provenance.builds(Library(LIBRARY_FILE).store._conn()):
        assert "model.py" in out  # the fingerprint says which file changed (information)


def test_check_retrains_every_sampled_question_bit_for_bit_on_todays_code():
    """The normal check's sample covers every question, and every sampled entry's first
    steps come out of today's code exactly as stored."""
    out = io.StringIO()
    assert lb.check(LIBRARY_FILE, QUESTIONS, out=out, sample_seed=3) == [], out.getvalue()
    text = out.getvalue()
    assert re.search(r"^  (\d+) of \1 match", text, re.M), text
    for seed in range(30):
        chosen = lb.prefix.sample(lb.plan(), QUESTIONS, random.Random(seed))
        assert {q for e in chosen for q, _ in e.answers} == {q.key for q in QUESTIONS}


def test_the_library_made_by_0_3_0_is_served_by_this_version(lib):
    """Which stored run answers a config is config equality, not the version."""
    text = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{bnviz_version()}"' in text and bnviz_version() != "0.3.0"
    cfg = QUESTION["presets"].points()[0].config
    v = lib.get(cfg)
    assert v is not None and v.info["bnviz_version"] == "0.3.0"
    mgr = JobManager(workers=1, library=lib)
    try:
        assert mgr.find(cfg).run_id == v.run_id
    finally:
        mgr.shutdown()


def test_the_shipped_library_records_its_provenance(lib):
    records = lb.provenance.builds(lib.store._conn())
    assert records, "the shipped library has no build record"
    first = records[0]
    assert first["runs"] <= len(lib) and first["fingerprint"] and first["commit_id"]
    assert "predate" in first["note"]  # honest: the runs were trained before recording
    # every later build (one per `library build`) says what it was made with and added
    assert all(r["fingerprint"] and r["commit_id"] for r in records)
    assert sum(r["added"] for r in records[1:]) <= len(lib)


def test_provenance_names_the_files_changed_since_the_build(tmp_path):
    c = sqlite3.connect(tmp_path / "lib.sqlite")
    lb.provenance.record(c, runs=2, added=2)
    assert "same fingerprint" in lb.provenance.report(c)
    files = json.loads(c.execute("SELECT files FROM library_builds").fetchone()[0])
    assert "model.py" in files and "trainer.py" in files and "speed/fused.c" in files
    files["model.py"] = "0" * 16
    c.execute("UPDATE library_builds SET files=?", (json.dumps(files),))
    report = lb.provenance.report(c)
    assert "changed since model.py (information only" in report


def test_prefix_of_a_downsampled_run_is_its_first_bucket_means():
    """A run of 10,000 steps is stored as 2,400 bucket means; the first 20 steps reach the
    first 5 buckets (edges 0, 4, 8, 12, 16, 20): the same means, bit for bit, from 20 steps."""
    rng = np.random.default_rng(0)
    n = 10000
    steps = np.column_stack([np.arange(1, n + 1), np.arange(1, n + 1) / 1000,
                             rng.random(n).astype(np.float32), rng.random(n).astype(np.float32)])
    stored = lb.downsample_steps(steps).astype(np.float32).astype(np.float64)  # as the store
    upto, rows, bucketed = lb.prefix.plan_prefix(stored, 20)
    assert (upto, rows, bucketed) == (20, 5, True)
    mine, theirs = lb.prefix.expected_rows(steps[:upto + 3], stored, 20)
    assert np.array_equal(mine.astype(np.float32), theirs.astype(np.float32))
    nudged = steps.copy()
    # A bucket mean is stored as a float32: a change to one step shows once it moves the
    # mean by more than the mean's rounding (one float32 ulp of one step of 4 may not).
    nudged[13, 2] += 1e-6
    mine, _ = lb.prefix.expected_rows(nudged[:upto], stored, 20)
    assert (mine.astype(np.float32) != theirs.astype(np.float32)).any(axis=1).tolist() == \
        [False, False, False, True, False]
    older = lb.downsample_steps(steps, 400)  # as the runs built with 400 points keep it
    assert lb.prefix.plan_prefix(older, 20) == (25, 1, True)  # one bucket of 25 steps
    mine, theirs = lb.prefix.expected_rows(steps[:25], older, 20)
    assert np.array_equal(mine, theirs) and theirs[0, 0] == 25
    whole = steps[:2000]  # a run kept whole compares its first k steps
    assert lb.prefix.plan_prefix(whole, 20) == (20, 20, False)
    assert lb.prefix.plan_prefix(whole[:7], 20) == (7, 7, False)  # ended (diverged) early


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


def test_check_names_an_entry_whose_stored_step_is_one_float32_ulp_off(tmp_path):
    """The prefix check is exact: one stored loss nudged by the smallest float32 step is
    caught and named; the build recorded what it was made with."""
    path = tmp_path / "lib.sqlite"
    lb.build(path, (TINY,), jobs=1)
    assert lb.check(path, (TINY,), every=True) == []
    c = sqlite3.connect(path)
    made = lb.provenance.builds(c)
    assert len(made) == 1 and made[0]["added"] == 4
    assert made[0]["fingerprint"] == lb.provenance.fingerprint()["hash"]
    run_id, blob, info = c.execute("SELECT s.run_id, s.steps, r.info FROM series s JOIN runs r "
                                   "USING (run_id) WHERE r.seed = 1 LIMIT 1").fetchone()
    assert json.loads(info)["code_fingerprint"] == made[0]["fingerprint"]
    steps = np.load(io.BytesIO(blob))
    steps[2, 2] = np.nextafter(steps[2, 2], np.float32(10))
    buf = io.BytesIO()
    np.save(buf, steps)
    c.execute("UPDATE series SET steps=? WHERE run_id=?", (buf.getvalue(), run_id))
    c.commit()
    c.close()
    out = io.StringIO()
    problems = lb.check(path, (TINY,), every=True, out=out)
    assert len(problems) == 2, problems  # the entry, then what to do
    assert re.match(rf"stale numbers: tiny · \S+( BN)?, seed 1 \(run {run_id}\): 1 of 4 "
                    r"steps differ; first at step 3", problems[0]), problems[0]
    assert out.getvalue().count("  STALE ") == 1 and out.getvalue().count("  ok    ") == 3


def test_findings_export_has_every_question(tmp_path, lib):
    dirs = lb.export(lib, tmp_path)
    assert {d.name for d in dirs} == {q.key for q in QUESTIONS}
    assert "seed 0:" in (tmp_path / "bias" / "loss_difference.txt").read_text()


def test_an_entry_trained_on_another_cpu_is_compared_to_a_tolerance_not_bit_for_bit():
    """Another CPU rounds the same code differently (AVX2 against AVX-512 kernels, the fused
    kernels built with -march=native): a difference in the 7th digit passes there, within
    CROSS_REL over the first CROSS_STEPS steps; a change of the maths (1e-3) does not; on the
    CPU that trained it, one float32 ulp is a difference."""
    from types import SimpleNamespace as NS
    from bnviz.config import Config
    from bnviz.library import prefix
    steps = np.array([[i + 1, (i + 1) / 235, 2.3 - 0.01 * i, 0.1] for i in range(20)],
                     dtype=np.float64)
    stored = NS(steps=steps, status="finished", config=Config(),
                info={"cpu": "x86_64, some other CPU, AVX512"})
    near = steps.copy()
    near[:, 2] *= 1 + 3e-7
    far = steps.copy()
    far[2, 2] *= 1 + 1e-3
    ulp = steps.copy()
    ulp[2, 2] = np.nextafter(np.float32(ulp[2, 2]), np.float32(10))
    k = prefix.CROSS_STEPS
    assert not prefix.same_cpu(stored)
    assert prefix.compare("e", stored, NS(steps=near, status="finished"), k,
                          prefix.CROSS_REL) is None
    assert "differ" in prefix.compare("e", stored, NS(steps=far, status="finished"), k,
                                      prefix.CROSS_REL)
    assert "differ" in prefix.compare("e", stored, NS(steps=ulp, status="finished"), 20)
    here = NS(**{**vars(stored), "info": {"cpu": prefix.cpu_signature()}})
    assert prefix.same_cpu(here)
    # A first step that matches with a later one apart is drift on another CPU (rounding that
    # a sensitive run amplifies), a difference on the CPU that trained it; a first step apart
    # is stale everywhere.
    assert prefix.judge("e", stored, NS(steps=near, status="finished"), k, False) == ("ok", None)
    assert prefix.judge("e", stored, NS(steps=far, status="finished"), k, False)[0] == "DRIFT"
    assert prefix.judge("e", stored, NS(steps=far, status="finished"), k, True)[0] == "STALE"
    first = steps.copy()
    first[0, 2] *= 1 + 1e-3
    assert prefix.judge("e", stored, NS(steps=first, status="finished"), k, False)[0] == "STALE"
    # a few drifted entries are rounding; most of them, a change of the update
    assert prefix.drift_problem(1, 16) is None and prefix.drift_problem(8, 16) is None
    assert "9 of 16 entries" in prefix.drift_problem(9, 16)


SMALL_BATCH = Question("small", "small", "a small-batch grid", lambda b: [
    GridPoint("bn", b), GridPoint("no BN", b.replace(norm="none"))],
    {"dataset": "subset", "train_size": 48, "batch_size": 4, "epochs": 1, "lr": 0.02}, seeds=3)


def test_build_trains_small_batch_seeds_as_one_batch_and_check_allows_its_rounding(tmp_path):
    """Where batching pays (batch 4 on a CPU), each configuration's seeds train as one batched
    model; the check then compares them with the same runs trained alone to CROSS_REL (they
    sum in other kernels' order), and still catches a changed number."""
    path = tmp_path / "lib.sqlite"
    assert lb.build(path, (SMALL_BATCH,), jobs=1)["trained"] == 6
    c = sqlite3.connect(path)
    said = [json.loads(s).get("batched") for (s,) in c.execute("SELECT summary FROM runs")]
    c.close()
    assert said == ["trained with 3 runs as one batched model"] * 6
    out = io.StringIO()
    assert lb.check(path, (SMALL_BATCH,), every=True, out=out) == []
    assert out.getvalue().count("as one batched model: within 1e-05") == 6

    def change(step: int, runs: int) -> list[str]:
        """Stored loss of `step` (0-based) 1e-3 off in the first `runs` runs."""
        c = sqlite3.connect(path)
        rows = c.execute("SELECT run_id, steps FROM series").fetchall()[:runs]
        for run_id, blob in rows:
            steps = np.load(io.BytesIO(blob))
            steps[step, 2] *= 1 + 1e-3
            buf = io.BytesIO()
            np.save(buf, steps)
            c.execute("UPDATE series SET steps=? WHERE run_id=?", (buf.getvalue(), run_id))
        c.commit()
        c.close()
        return [r for r, _ in rows]
    # a later step of one run off: drift, as rounding a sensitive run amplifies
    change(1, 1)
    out = io.StringIO()
    assert lb.check(path, (SMALL_BATCH,), every=True, out=out) == []
    assert "DRIFT" in out.getvalue() and "1 of 6 entries" in out.getvalue()
    # the same in every run: a change of the update, a problem
    change(1, 6)
    problems = lb.check(path, (SMALL_BATCH,), every=True, out=io.StringIO())
    assert any("6 of 6 entries trained on other CPUs" in p for p in problems), problems
    # a first step off is stale in any one run
    first = change(0, 1)
    problems = lb.check(path, (SMALL_BATCH,), every=True, out=io.StringIO())
    assert problems and first[0] in problems[0]
