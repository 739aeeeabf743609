"""A Runner that trains on a Ray cluster (BNVIZ_RUNNER=ray; `pip install -e .[ray]`).

Everything a page sees is JobManager's: the same submit checks, limits, fair queue, reuse of
finished runs and of the results library, records, store and time budget. Only
`_train_batch` differs (one Ray task trains one run, or one batch of a grid's runs as one
batched model):
each of the web server's worker threads owns a Ray actor (`TrainActor`, a training
slot on some node of the cluster, kept from run to run) that trains the thread's runs with
bnviz's Trainer and keeps their events; the thread pulls them (each pull returns as soon as
there are any, or after POLL_S) and feeds them to the run's record and listeners, so the web
server stays the only writer of its run store. `workers` is how many runs the cluster trains
at once (each actor asks Ray for `cpus_per_run` CPUs and `gpus_per_run` GPUs); runs beyond
that wait in the fair queue as with JobManager, and a grid fans out over the slots.

Cancel: Stop sets rec.stop; the next pull tells the actor, whose Trainer checks its stop flag
before every step. A worker process that dies (killed, out of memory, its node lost) fails the
run it was training with the reason; what the record already holds is saved, nothing is
retried (a retried run would repeat its first epochs on another node; press Train again).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

from bnviz.runs.jobs import JobManager
from bnviz.runs.record import RunRecord

log = logging.getLogger("bnviz.runs.ray")
POLL_S = 0.25  # longest wait for new events in one pull (a pull returns as soon as any come)

try:
    import ray
    from ray.exceptions import RayActorError, RayTaskError
except ImportError:  # the extra is not installed: runner_from_env says how to get it
    ray = None


def _actor_class():
    @ray.remote(max_concurrency=4, max_restarts=0)
    class TrainActor:
        """A training slot on one Ray worker: trains one run at a time (in a thread of the
        actor) while `drain` and `stop` are served beside it. It lives as long as the web
        server's worker thread that uses it, so a run does not pay for a new process (torch
        imported, data decoded) each time."""

        def __init__(self, threads: int):
            import torch
            torch.set_num_threads(max(1, threads))
            self._events: list = []
            self._cv = threading.Condition()
            self._stops: dict[str, threading.Event] = {}

        def pid(self) -> int:
            return os.getpid()

        def train(self, run_ids: list, cfgs: list) -> str:
            """Train one run, or several of one batch key as one batched model; their events
            are kept as (index of the run, event)."""
            from bnviz.runs.training import train_together

            def keep(i):
                def listener(e):
                    with self._cv:
                        self._events.append((i, e))
                        self._cv.notify_all()
                return listener
            with self._cv:
                self._events = []
                stops = [self._stops.setdefault(r, threading.Event()) for r in run_ids]
            try:
                train_together(cfgs, [[keep(i)] for i in range(len(cfgs))], stops)
            finally:
                with self._cv:
                    for r in run_ids:
                        self._stops.pop(r, None)
            return "done"

        def drain(self, wait: float) -> list:
            """The events since the last call; waits up to `wait` s for one to come."""
            with self._cv:
                if not self._events:
                    self._cv.wait(timeout=wait)
                out, self._events = self._events, []
            return out

        def stop(self, run_id: str) -> None:
            with self._cv:  # a stop that comes before train() starts is kept for it
                self._stops.setdefault(run_id, threading.Event()).set()
    return TrainActor


class RayRunner(JobManager):
    """JobManager whose runs train on Ray actors. `address`: an existing cluster ("auto" or
    ray://…; None starts a local one with `num_cpus`)."""

    def __init__(self, workers: int | None = None, store=None, limits=None, library=None,
                 address: str | None = None, num_cpus: int | None = None,
                 cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, observers=()):
        if ray is None:
            raise RuntimeError("BNVIZ_RUNNER=ray needs Ray: pip install -e '.[ray]' "
                               "(or -r requirements-ray.txt)")
        if not ray.is_initialized():
            # Workers import bnviz from the same place as this process (a local cluster, or
            # nodes with the same checkout/install; see README "Deploying").
            here = str(Path(__file__).resolve().parents[2])
            env = {"PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
            kwargs = dict(runtime_env={"env_vars": env}, include_dashboard=False,
                          log_to_driver=False, ignore_reinit_error=True)
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count() or 2, **kwargs)
        self.cpus_per_run, self.gpus_per_run = cpus_per_run, gpus_per_run
        self._actor_cls = _actor_class()
        self._actors: dict[str, object] = {}  # run id -> the slot training it
        self._slots: dict[str, object] = {}  # worker thread -> its actor
        self._actors_lock = threading.Lock()
        cluster = int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_run, 1e-9))
        super().__init__(workers=workers or max(1, cluster), store=store, limits=limits,
                         observers=observers, library=library)

    def _actor(self):
        """This worker thread's training slot on the cluster (made on first use, and again
        after its process died)."""
        me = threading.current_thread().name
        with self._actors_lock:
            actor = self._slots.get(me)
        if actor is None:
            opts = {"num_cpus": self.cpus_per_run}
            if self.gpus_per_run:
                opts["num_gpus"] = self.gpus_per_run
            actor = self._actor_cls.options(**opts).remote(int(max(1, self.cpus_per_run)))
            with self._actors_lock:
                self._slots[me] = actor
        return actor

    def _train_batch(self, recs: list[RunRecord], listeners: list[list]) -> None:
        """Train `recs` (one run, or one batch) in one task on this thread's slot, feeding
        each run's events to its listeners here."""
        actor = self._actor()
        with self._actors_lock:
            for rec in recs:
                self._actors[rec.run_id] = actor
        done = actor.train.remote([r.run_id for r in recs], [r.config for r in recs])
        ended: set[int] = set()

        def pull(wait: float) -> bool:
            """Feed the events the slot has kept to the listeners; True once all ended."""
            for i, e in ray.get(actor.drain.remote(wait)):
                for listener in listeners[i]:
                    listener(e)
                if e.kind == "ended":
                    ended.add(i)
            return len(ended) == len(recs)

        stop_sent: set[str] = set()
        try:
            while not pull(POLL_S):
                for rec in recs:
                    if rec.stop.is_set() and rec.run_id not in stop_sent:
                        actor.stop.remote(rec.run_id)
                        stop_sent.add(rec.run_id)
                if ray.wait([done], timeout=0)[0]:  # training returned (or raised)
                    ray.get(done)  # raises what the actor raised
                    pull(0)  # the last events
                    break
        except (RayActorError, RayTaskError) as e:
            why = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            reason = (f"the Ray worker training it died ({why}); what it had recorded is "
                      "kept — press Train to run it again")
            for i, rec in enumerate(recs):
                if i in ended:
                    continue
                # stored first, as with every ending: whoever sees "failed" finds it saved
                self._persist(rec, dataclasses.replace(rec.view(), status="failed",
                                                       reason=reason, ended=time.time()))
                rec.set_status("failed", reason)
            log.warning("runs %s: Ray worker died: %s", [r.run_id for r in recs], why)
            with self._actors_lock:  # the next run of this thread gets a new slot
                if self._slots.get(threading.current_thread().name) is actor:
                    del self._slots[threading.current_thread().name]
        finally:
            with self._actors_lock:
                for rec in recs:
                    self._actors.pop(rec.run_id, None)

    def worker_pid(self, run_id: str) -> int | None:
        """The OS process of the Ray worker training this run (tests kill it)."""
        with self._actors_lock:
            actor = self._actors.get(run_id)
        return ray.get(actor.pid.remote()) if actor is not None else None

    def stats(self) -> dict[str, int]:
        out = super().stats()
        out["ray_actors"] = len(self._slots)
        return out

    def shutdown(self, timeout: float = 10.0) -> None:
        super().shutdown(timeout)
        with self._actors_lock:
            slots, self._slots = list(self._slots.values()), {}
        for actor in slots:  # the cluster's CPUs go back to it
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


def ray_runner_from_env(env, store, limits, library) -> RayRunner:
    """BNVIZ_RUNNER=ray: RAY_ADDRESS (or BNVIZ_RAY_ADDRESS) names a cluster, else a local one
    with BNVIZ_RAY_CPUS CPUs; BNVIZ_RAY_GPUS_PER_RUN (0) and BNVIZ_RAY_CPUS_PER_RUN (1) are
    what each run asks for; BNVIZ_WORKERS caps the runs in flight (default: what fits)."""
    def num(name, default, kind=float):
        try:
            return kind(env.get(name) or default)
        except ValueError:
            log.warning("ignored %s=%r: not a number", name, env.get(name))
            return kind(default)
    address = env.get("BNVIZ_RAY_ADDRESS") or env.get("RAY_ADDRESS") or None
    if not env.get("BNVIZ_LIMIT_MAX_WORKERS"):
        # The hosted cap on training threads keeps a core for the web server; with Ray the
        # training is on the cluster, so the cluster's size is the cap.
        limits.max_workers = 0
    return RayRunner(workers=num("BNVIZ_WORKERS", 0, int) or None, store=store, limits=limits,
                     library=library, address=address, num_cpus=num("BNVIZ_RAY_CPUS", 0, int)
                     or None, cpus_per_run=num("BNVIZ_RAY_CPUS_PER_RUN", 1.0),
                     gpus_per_run=num("BNVIZ_RAY_GPUS_PER_RUN", 0.0))

