"""The run store: SQLite (WAL) holding every run's config, status, summary and series."""
from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import threading
import time
import zlib
from math import prod
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from bnviz.config import config_from_dict
from bnviz.runs.record import RunView

# The schema is versioned by SQLite's `PRAGMA user_version`. A file written before versioning
# reads 0. MIGRATIONS[i] upgrades version i to i + 1; each runs in its own BEGIN IMMEDIATE
# transaction together with the version bump and its line in schema_history, so a crash
# leaves the file at the old version or the new one, and of several programs opening the
# same old file at once exactly one migrates while the others wait and then find it done.
# Never edit a migration that has shipped: append a new one.
V1_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    config_id TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    data_source TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    info TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}',
    label TEXT NOT NULL DEFAULT ''
)""",
    "CREATE INDEX IF NOT EXISTS runs_by_config ON runs (config_id, seed, status)",
    """CREATE TABLE IF NOT EXISTS series (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
    steps BLOB,
    evals TEXT NOT NULL DEFAULT '[]',
    epochs TEXT NOT NULL DEFAULT '[]',
    snapshots BLOB
)""",
    """CREATE TABLE IF NOT EXISTS schema_history (
    version INTEGER PRIMARY KEY,
    applied REAL NOT NULL,
    by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
)""",
)


def _v1_tables(c: sqlite3.Connection) -> str:
    """The tables of the unversioned store (a file from before versioning already has them:
    its tables are unchanged), plus schema_history."""
    for sql in V1_SCHEMA:
        c.execute(sql)
    return "runs, series, runs_by_config, schema_history"


def rekey_config_ids(c: sqlite3.Connection) -> int:
    """Recompute every run's config_id from its stored config under today's Config.config_id
    (config_from_dict drops knobs removed since and gives added ones their defaults). Returns
    how many ids changed. The runs_by_config index follows each UPDATE. A migration calls this
    whenever the id scheme, or a knob's default, changes: runs keep their full config, so they
    are re-keyed rather than trained again."""
    changed = 0
    for run_id, config, old in c.execute("SELECT run_id, config, config_id FROM runs"
                                         ).fetchall():
        try:
            new = config_from_dict(json.loads(config)).config_id()
        except (ValueError, TypeError, AttributeError):
            continue  # an unreadable config keeps its id: it cannot be loaded either
        if new != old:
            c.execute("UPDATE runs SET config_id=? WHERE run_id=?", (new, run_id))
            changed += 1
    return changed


def _v2_non_default_ids(c: sqlite3.Connection) -> str:
    """config_id now hashes only the non-default knobs (it hashed every knob)."""
    return f"config_id hashes non-default knobs; {rekey_config_ids(c)} runs re-keyed"


def _v3_drop_label(c: sqlite3.Connection) -> str:
    """runs.label goes: no version of bnviz ever wrote or read it."""
    if "label" not in {r[1] for r in c.execute("PRAGMA table_info(runs)")}:
        return "no runs.label to drop"
    if sqlite3.sqlite_version_info < (3, 35, 0):  # DROP COLUMN came with SQLite 3.35
        return (f"runs.label left in place: SQLite {sqlite3.sqlite_version} cannot drop a "
                "column, and nothing reads it")
    c.execute("ALTER TABLE runs DROP COLUMN label")
    return "dropped runs.label (never written)"


def _v4_compact_snapshots(c: sqlite3.Connection) -> str:
    """gamma/beta snapshots in one compressed block each (`_pack_snapshots`), re-encoded
    from the npz they were: the same float32 numbers. An npz member per array made reading
    the results library's 44k arrays seconds of header parsing: its 455 lookups took 3.6 s,
    0.5 s after (2026-12-02, this project's 2-core CPU)."""
    rows = c.execute("SELECT run_id, snapshots FROM series WHERE snapshots IS NOT NULL"
                     ).fetchall()
    done = 0
    for run_id, blob in rows:
        if blob and not bytes(blob).startswith(_SNAP_MAGIC):
            c.execute("UPDATE series SET snapshots=? WHERE run_id=?",
                      (_pack_snapshots(_unpack_snapshots(blob)), run_id))
            done += 1
    return f"snapshots re-encoded as one compressed block: {done} runs"


MIGRATIONS: list[Callable[[sqlite3.Connection], str]] = [_v1_tables, _v2_non_default_ids,
                                                         _v3_drop_label, _v4_compact_snapshots]
SCHEMA_VERSION = len(MIGRATIONS)
# A read-only file (the shipped results library) cannot be migrated, so it is read as it is
# from this version on: what changed since only removed what nothing reads (v3: runs.label)
# or re-encoded what is read in both encodings (v4: the snapshots).
# Raise it with a migration that changes what the reads see (a column they select, ids).
READS_FROM = 2


class StoreError(RuntimeError):
    """The database could not be opened or used; the message says what to do."""


def default_path() -> Path:
    if os.environ.get("BNVIZ_DB"):
        return Path(os.environ["BNVIZ_DB"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "bnviz" / "runs.sqlite"


def owner_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's runs are not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Snapshots: _SNAP_MAGIC, the header's length (4 bytes, little-endian), a JSON header
# {"index": [[iteration, epoch], ...], "arrays": [[snapshot, site, stat, shape], ...]}, then
# every array's float32 values (little-endian) in the header's order, zlib-compressed as one.
_SNAP_MAGIC = b"BNVS\x01"


def _pack_snapshots(snaps) -> bytes:
    index = [[int(it), float(ep)] for it, ep, _ in snaps]
    arrays, parts = [], []
    for i, (_, _, layers) in enumerate(snaps):
        for site, d in layers.items():
            for stat, v in d.items():
                a = np.asarray(v, dtype="<f4")  # tobytes() is C order; a scalar stays 0-d
                arrays.append([i, site, stat, list(a.shape)])
                parts.append(a.tobytes())
    head = json.dumps({"index": index, "arrays": arrays}).encode()
    return (_SNAP_MAGIC + len(head).to_bytes(4, "little") + head
            + zlib.compress(b"".join(parts), 6))


def _unpack_snapshots(blob: bytes | None):
    """[(iteration, epoch, {site: {stat: float32 array}})] from either encoding: the compact
    one above, or the npz of stores written before schema version 4 (a read-only results
    library of an older build is read as it is)."""
    if not blob:
        return []
    blob = bytes(blob)
    if blob.startswith(_SNAP_MAGIC):
        start = len(_SNAP_MAGIC) + 4
        end = start + int.from_bytes(blob[len(_SNAP_MAGIC):start], "little")
        head = json.loads(blob[start:end])
        flat = np.frombuffer(bytearray(zlib.decompress(blob[end:])), dtype="<f4")
        snaps = [(int(it), float(ep), {}) for it, ep in head["index"]]
        at = 0
        for i, site, stat, shape in head["arrays"]:
            k = prod(shape)
            snaps[i][2].setdefault(site, {})[stat] = flat[at:at + k].reshape(shape)
            at += k
        return snaps
    with np.load(io.BytesIO(blob)) as z:
        index = z["_index"]
        snaps = [(int(it), float(ep), {}) for it, ep in index]
        for key in z.files:
            if key == "_index":
                continue
            i, site, stat = key.split("/")
            snaps[int(i)][2].setdefault(site, {})[stat] = z[key]
    return snaps


def _pack_steps(steps: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, steps.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def _json(v: Any) -> str:
    return json.dumps(v, default=lambda o: o.item() if hasattr(o, "item") else str(o),
                      allow_nan=True)


class RunStore:
    """One connection per thread; SQLite's WAL lets many readers run beside one writer."""

    def __init__(self, path: Path | str | None = None, timeout: float = 15.0,
                 readonly: bool = False):
        """`readonly` opens a file nobody writes while it is open (the shipped results
        library, perhaps in a read-only site-packages) as immutable: no lock, no journal,
        no migration; a file of a version outside READS_FROM..SCHEMA_VERSION is refused with
        the reason."""
        self.path = Path(path) if path else default_path()
        self.timeout = timeout  # seconds a write waits for another program's lock
        self.readonly = readonly
        self._local = threading.local()
        self._write_lock = threading.Lock()
        try:
            if readonly:
                if not self.path.is_file():
                    raise StoreError(f"{self.path} does not exist")
                version = self._conn().execute("PRAGMA user_version").fetchone()[0]
                if not READS_FROM <= version <= SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {version}, this bnviz reads "
                        f"{READS_FROM} to {SCHEMA_VERSION} read-only; rebuild it "
                        "(python -m bnviz library build)")
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._write_lock:
                self._migrate(self._conn())
        except (sqlite3.Error, OSError) as e:
            raise StoreError(self._explain(e)) from e

    def _too_new(self, version: int) -> StoreError:
        return StoreError(
            f"the run store {self.path} has schema version {version}, newer than this bnviz "
            f"knows (up to {SCHEMA_VERSION}): it was written by a newer bnviz. Update bnviz, "
            "or point BNVIZ_DB at another file; its runs are left as they are")

    def _migrate(self, c: sqlite3.Connection) -> None:
        """Bring the file to SCHEMA_VERSION in place, one migration per transaction. The
        version is read again under BEGIN IMMEDIATE (the write lock), so a program that waited
        for another's upgrade finds it done and does nothing."""
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise self._too_new(version)
        while version < SCHEMA_VERSION:
            c.execute("BEGIN IMMEDIATE")
            try:
                version = c.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise self._too_new(version)
                if version < SCHEMA_VERSION:
                    note = MIGRATIONS[version](c)
                    version += 1
                    c.execute(f"PRAGMA user_version = {int(version)}")
                    c.execute("INSERT INTO schema_history (version, applied, by, note) "
                              "VALUES (?,?,?,?)", (version, time.time(), owner_tag(), note))
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    def _explain(self, e: Exception) -> str:
        msg = str(e)
        if "locked" in msg or "busy" in msg:
            return (f"the run store {self.path} is locked by another program; try again in a "
                    "moment")
        if "malformed" in msg or "not a database" in msg:
            return (f"the run store {self.path} is corrupt ({msg}); move it aside, or point "
                    "BNVIZ_DB at a new file — runs are then kept there")
        return f"the run store {self.path} cannot be used: {msg}"

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None and self.readonly:
            c = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1",
                                uri=True, isolation_level=None, check_same_thread=False)
            c.row_factory = sqlite3.Row
            self._local.conn = c
        if c is None:
            c = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA foreign_keys=ON")
            c.row_factory = sqlite3.Row
            self._local.conn = c
        return c

    def _write(self, sql: str, params: Iterable = ()) -> None:
        try:
            with self._write_lock:
                self._conn().execute(sql, tuple(params))
        except sqlite3.Error as e:
            raise StoreError(self._explain(e)) from e

    def _read(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        try:
            return self._conn().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as e:
            raise StoreError(self._explain(e)) from e

    # -- writing -------------------------------------------------------------------------
    def save(self, v: RunView) -> None:
        """Insert or replace the whole run: metadata and series, in one transaction."""
        row = (v.run_id, v.config.config_id(), v.config.seed, _json(v.config.to_dict()),
               v.status, v.reason, v.session, owner_tag(), v.info.get("data_source", ""),
               v.info.get("device", ""), v.created, v.started, v.ended, _json(v.info),
               _json(v.summary))
        try:
            with self._write_lock:
                c = self._conn()
                c.execute("BEGIN IMMEDIATE")
                try:
                    c.execute("INSERT OR REPLACE INTO runs (run_id, config_id, seed, config, "
                              "status, reason, session, owner, data_source, device, created, "
                              "started, ended, info, summary) VALUES "
                              "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
                    c.execute("INSERT OR REPLACE INTO series (run_id, steps, evals, "
                              "epochs, snapshots) VALUES (?,?,?,?,?)",
                              (v.run_id, _pack_steps(v.steps), _json(v.evals), _json(v.epochs),
                               _pack_snapshots(v.snapshots)))
                    c.execute("COMMIT")
                except BaseException:
                    c.execute("ROLLBACK")
                    raise
        except sqlite3.Error as e:
            raise StoreError(self._explain(e)) from e

    def mark_interrupted(self) -> int:
        """Runs left queued/running by a process that no longer exists become 'interrupted'."""
        rows = self._read("SELECT run_id, owner FROM runs WHERE status IN ('queued','running')")
        dead = [r["run_id"] for r in rows if not _owner_alive(r["owner"])]
        for run_id in dead:
            self._write("UPDATE runs SET status='interrupted', reason=?, ended=? "
                        "WHERE run_id=?", ("the server stopped while this run was going; "
                                           "press Train to run it again", time.time(), run_id))
        return len(dead)

    # -- reading -------------------------------------------------------------------------
    def load(self, run_id: str) -> RunView | None:
        rows = self._read("SELECT r.*, s.steps, s.evals, s.epochs, s.snapshots FROM runs r "
                          "LEFT JOIN series s USING (run_id) WHERE r.run_id=?", (run_id,))
        return self._view(rows[0]) if rows else None

    def _view(self, r: sqlite3.Row) -> RunView:
        steps = np.load(io.BytesIO(r["steps"])).astype(np.float64) if r["steps"] else \
            np.zeros((0, 4))
        return RunView(r["run_id"], config_from_dict(json.loads(r["config"])), r["status"],
                       r["reason"], r["session"], r["created"], r["started"], r["ended"],
                       json.loads(r["info"]), json.loads(r["summary"]), steps,
                       json.loads(r["evals"] or "[]"), _unpack_snapshots(r["snapshots"]),
                       json.loads(r["epochs"] or "[]"))

    def find_finished(self, config_id: str, seed: int, data_source: str | None = None,
                      statuses: tuple[str, ...] = ("finished",)) -> str | None:
        """The newest run of this config id and seed that ended in one of `statuses`."""
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT run_id FROM runs WHERE config_id=? AND seed=? AND status IN ({marks})"
        params: list = [config_id, seed, *statuses]
        if data_source:
            sql += " AND data_source=?"
            params.append(data_source)
        rows = self._read(sql + " ORDER BY ended DESC LIMIT 1", params)
        return rows[0]["run_id"] if rows else None

    def list_runs(self, status: str | None = None, config_id: str | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
        """Metadata only (no series), newest first."""
        sql = ("SELECT run_id, config_id, seed, config, status, reason, data_source, device, "
               "created, ended, summary FROM runs WHERE 1=1")
        params: list = []
        if status:
            sql += " AND status=?"
            params.append(status)
        if config_id:
            sql += " AND config_id=?"
            params.append(config_id)
        out = []
        for r in self._read(sql + " ORDER BY created DESC LIMIT ?", [*params, limit]):
            d = dict(r)
            d["config"] = json.loads(d["config"])
            d["summary"] = json.loads(d["summary"])
            out.append(d)
        return out

    def integrity(self) -> str:
        return self._read("PRAGMA integrity_check")[0][0]

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None
