"""What a library build was made with: the commit and a fingerprint of the code that
determines a run's numbers, kept in the library file's own table `library_builds` (one row per
build that added runs). `check` compares the fingerprint with today's and says which files
changed, as information: whether the stored numbers still hold is decided by retraining
(bnviz.library.prefix), since most edits to these files change no number.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # bnviz/
# The files a run's numbers come from, given its config and seed: the config and its
# defaults, the data and its order, the schedule, the model and its init, the norms, the
# trainer, the evaluation and metrics, the fast path and its kernels, the one training call.
FINGERPRINTED = ("config.py", "data.py", "schedule.py", "model.py", "norms.py",
                 "norm_kinds.py", "norm_kinds/*.py", "trainer.py", "evaluation.py",
                 "metrics.py", "speed/*.py", "speed/*.c", "runs/training.py",
                 "datasets/*.npz")
TABLE = """CREATE TABLE IF NOT EXISTS library_builds (
    at REAL NOT NULL,
    commit_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    files TEXT NOT NULL,
    bnviz_version TEXT NOT NULL,
    runs INTEGER NOT NULL,
    added INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT ''
)"""


def fingerprint(root: Path = PACKAGE) -> dict:
    """{"hash": one hash of every fingerprinted file, "files": {path: its own hash}}."""
    files = {}
    for pattern in FINGERPRINTED:
        for p in sorted(root.glob(pattern)):
            if p.is_file():
                files[p.relative_to(root).as_posix()] = hashlib.sha256(
                    p.read_bytes()).hexdigest()[:16]
    whole = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    return {"hash": whole, "files": files}


def commit(root: Path = PACKAGE) -> str:
    """The checkout's commit, marked when the fingerprinted files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return "unknown (not a git checkout)"
        dirty = git("status", "--porcelain", "--", *FINGERPRINTED).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not available)"
    return head.stdout.strip() + (" with uncommitted changes to the fingerprinted files"
                                  if dirty else "")


def record(c: sqlite3.Connection, runs: int, added: int, note: str = "") -> None:
    """Append this build's line (the caller seals the file)."""
    from bnviz.library import bnviz_version
    fp = fingerprint()
    c.execute(TABLE)
    c.execute("INSERT INTO library_builds VALUES (?,?,?,?,?,?,?,?)",
              (time.time(), commit(), fp["hash"], json.dumps(fp["files"]), bnviz_version(),
               runs, added, note))


def builds(c: sqlite3.Connection) -> list[dict]:
    """Every recorded build, oldest first (none in a file from before recording)."""
    try:
        rows = c.execute("SELECT * FROM library_builds ORDER BY at").fetchall()
        names = [d[0] for d in c.execute("SELECT * FROM library_builds LIMIT 0").description]
    except sqlite3.OperationalError:  # no such table
        return []
    return [dict(zip(names, r)) for r in rows]


def report(c: sqlite3.Connection) -> str:
    """The last build's record against today's code, in a few lines."""
    done = builds(c)
    if not done:
        return ("provenance: no build record in this file (it predates recording); the "
                "retrained steps below decide")
    last = done[-1]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last["at"]))
    lines = [f"provenance: last recorded {when}, commit {last['commit_id']}, bnviz "
             f"{last['bnviz_version']}, code fingerprint {last['fingerprint']}"]
    if last["note"]:
        lines.append(f"  note: {last['note']}")
    now, then = fingerprint(), json.loads(last["files"])
    changed = sorted(p for p in set(then) | set(now["files"])
                     if then.get(p) != now["files"].get(p))
    if not changed:
        lines.append("  today's code has the same fingerprint")
    else:
        lines.append(f"  today's fingerprint is {now['hash']}: changed since "
                     f"{', '.join(changed)} (information only: the retrained steps decide "
                     "whether the stored numbers still hold)")
    return "\n".join(lines)


def add_record(path: Path, note: str, runs: int) -> None:
    """Append a record to a sealed library file without touching its runs: written to a copy
    beside it, sealed, then swapped in (a reader with the old file open keeps reading it)."""
    import os
    import shutil
    from bnviz.library.build import _seal
    tmp = path.with_name(path.name + ".new")
    shutil.copyfile(path, tmp)
    c = sqlite3.connect(tmp, isolation_level=None)
    c.execute("BEGIN")
    record(c, runs=runs, added=0, note=note)
    c.execute("COMMIT")
    c.close()
    _seal(tmp)
    os.replace(tmp, path)
