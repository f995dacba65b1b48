"""Where steps run: one at a time in the build's process, in a pool of worker
processes (`-j N`), or on a Dask cluster. A runner takes self-contained jobs and hands
back results (or the exception a job raised); it decides nothing and records nothing.
"""
from __future__ import annotations

import collections
import os
import time
from typing import TYPE_CHECKING, Any, Callable

from .errors import UsageError
from .graph import RuleNode

if TYPE_CHECKING:
    from .worker import Context, Job
    from .project import Project


class Runner:
    """Where steps run. `submit` hands over a job; `wait` returns finished ones as
    (ticket, JobResult or the exception it raised). Partitions that yielding recipes
    write are reported to `on_partitions` as (step, key, path, stamp, digest) events;
    `recorded` says whether the runner's workers have recorded them already (in journals
    of their own, `journals`) or the build is to."""

    size = 1
    inline = False
    journals = False  # whether workers record partitions in journals of their own

    def submit(self, job: Job, ctx: Context | None, on_partitions) -> Any:
        raise NotImplementedError

    def wait(self, on_partitions) -> list[tuple[Any, Any]]:
        raise NotImplementedError

    def queue(self) -> Any:
        return None

    def close(self, cancel: bool = False) -> None:
        pass


class InlineRunner(Runner):
    """Steps run one at a time in this process (`-j 1`, the default)."""

    inline = True

    def __init__(self) -> None:
        self._done: list[tuple[Any, Any]] = []
        self._n = 0

    def submit(self, job: Job, ctx: Context | None, on_partitions) -> Any:
        from . import processes

        processes.stop_if_interrupted()
        self._n += 1
        ticket = self._n

        def on_partition(key: str, path: str, stamp: str, digest: str) -> None:
            on_partitions([(job.step, key, path, stamp, digest)])  # recorded at once

        try:
            from .worker import run_job

            self._done.append((ticket, run_job(job, ctx, on_partition)))
        except BaseException as e:  # recipe failures and storage errors, reported by the build
            if isinstance(e, KeyboardInterrupt) and processes.interrupted():
                raise  # Ctrl-C or SIGTERM: the build stops
            self._done.append((ticket, e))
        return ticket

    def wait(self, on_partitions) -> list[tuple[Any, Any]]:
        done, self._done = self._done, []
        return done


class WorkerDied(Exception):
    """A pool worker ended while running a step, without an exception to tell why (a
    signal, the OOM killer, a crash in native code, os.abort)."""


class PoolRunner(Runner):
    """Steps run in N worker processes (`-j N`): CPU-bound pandas and Python code needs
    processes, not threads. Workers load and save through the catalog themselves, and
    record the partitions of yielding recipes in journals of their own, which the build
    takes in (`take_records`) as it waits.

    Workers die with the build, even killed with SIGKILL (`processes.worker_init`). A
    worker that dies while running a step breaks the whole pool (Python's pool stops
    every worker): a new pool takes its place; when a single step was running, it is the
    one that failed; otherwise the steps that were running are run again one at a time,
    so that the one that kills its worker is found and failed, and the others finish."""

    journals = True

    def __init__(self, size: int, take_records: Callable[[], list]):
        import multiprocessing

        self.size = size
        methods = multiprocessing.get_all_start_methods()
        self._mp = multiprocessing.get_context("fork" if "fork" in methods else None)
        self._take = take_records
        self._n = 0
        self._running: dict[Any, tuple[int, Job]] = {}  # future -> (ticket, job)
        self._waiting: collections.deque[tuple[int, Job]] = collections.deque()
        self._suspects: collections.deque[tuple[int, Job]] = collections.deque()
        self._alone: int | None = None  # the suspect running alone
        self._procs: dict[int, Any] = {}  # pid -> the pool's worker processes, as seen
        self.pool = self._new_pool()

    def _new_pool(self) -> Any:
        import concurrent.futures

        from . import processes, worker  # noqa: F401 (the forked workers have it loaded)

        return concurrent.futures.ProcessPoolExecutor(
            self.size, mp_context=self._mp, initializer=processes.worker_init,
            initargs=(os.getpid(),))

    def submit(self, job: Job, ctx: Context | None, on_partitions) -> Any:
        self._n += 1
        self._waiting.append((self._n, job))
        self._pump()
        return self._n

    def _pump(self) -> None:
        """Hand waiting jobs to the pool: a suspect alone, else up to its size."""
        if self._suspects or self._alone is not None:
            if not self._running and self._suspects:
                ticket, job = self._suspects.popleft()
                self._start(ticket, job)
                self._alone = ticket
            return
        while self._waiting and len(self._running) < self.size:
            self._start(*self._waiting.popleft())

    def _start(self, ticket: int, job: "Job") -> None:
        import concurrent.futures

        from . import processes
        from .worker import run_job

        try:
            fut = self.pool.submit(processes.in_worker, run_job, job)
        except concurrent.futures.process.BrokenProcessPool:
            # A worker died between steps (killed from outside): no step of ours failed.
            self.pool.shutdown(wait=True)
            self._procs.clear()
            self.pool = self._new_pool()
            fut = self.pool.submit(processes.in_worker, run_job, job)
        self._running[fut] = (ticket, job)
        self._procs.update(getattr(self.pool, "_processes", None) or {})

    def wait(self, on_partitions) -> list[tuple[Any, Any]]:
        import concurrent.futures

        while True:
            done, _ = concurrent.futures.wait(list(self._running), timeout=0.1,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            self._drain(on_partitions)
            if done:
                break
        out: list[tuple[Any, Any]] = []
        broken: list[tuple[int, Job]] = []
        for fut in done:
            ticket, job = self._running.pop(fut)
            if ticket == self._alone:
                self._alone = None  # the next suspect (or the waiting steps) may start
            try:
                out.append((ticket, fut.result()))
            except concurrent.futures.process.BrokenProcessPool:
                broken.append((ticket, job))
            except BaseException as e:  # noqa: BLE001 - the build reports it
                out.append((ticket, e))
        if broken:
            out.extend(self._replace_pool(broken, on_partitions))
        self._pump()
        return out

    def _replace_pool(self, broken: list[tuple[int, Job]], on_partitions) -> list[tuple[Any, Any]]:
        """A worker died and took the pool with it: every step still running there ends
        broken too. Returns the failed ones; the others are run again."""
        import concurrent.futures

        # Every step still running was failed at once by the pool: collect them.
        rest, _ = concurrent.futures.wait(list(self._running), timeout=60)
        for fut in rest:
            ticket, job = self._running.pop(fut)
            try:
                fut.result()
            except BaseException:  # noqa: BLE001 - broken like the others
                pass
            broken.append((ticket, job))
        self._drain(on_partitions)  # what they recorded before the end
        self._alone = None
        self.pool.shutdown(wait=True)  # its workers all joined: their statuses are known
        status = self._death()
        self.pool = self._new_pool()
        if len(broken) == 1:  # alone in the pool: it is the one that died
            ticket, job = broken[0]
            return [(ticket, _died(job.step, status))]
        # Several were running: the one that ends its worker is found by running them
        # again one at a time (each at most once more).
        self._suspects.extend(sorted(broken))
        return []

    def _death(self) -> str:
        """How the worker that broke the pool ended, as said to the user."""
        import signal

        codes = [p.exitcode for p in self._procs.values() if p.exitcode is not None]
        self._procs.clear()
        # Python's pool stops the other workers with SIGTERM, which ends ours with 143
        # (or the signal itself, idle): any other status is the dead one's.
        stopped = (-signal.SIGTERM, 128 + signal.SIGTERM)
        code = next((c for c in codes if c not in stopped), None)
        if code is None:
            return "stopped by SIGTERM" if codes else "ended"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            hint = "; out of memory?" if -code == signal.SIGKILL else ""
            return f"killed by signal {-code} ({name}{hint})"
        return f"exit status {code}"

    def _drain(self, on_partitions) -> None:
        events = self._take()
        if events:
            on_partitions(events, recorded=True)

    def close(self, cancel: bool = False) -> None:
        for fut in self._running:
            fut.cancel()
        self._waiting.clear()
        self._suspects.clear()
        if cancel:
            # Interrupted: stop the workers now. SIGTERM interrupts a running job (its
            # shell line's processes are stopped, its temporary files removed); a worker
            # that outlasts its grace is killed. What a killed job leaves is at most a
            # temporary file in .datamake/tmp, which the next build removes.
            from . import processes

            procs = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(timeout=processes.WORKER_GRACE + 5)
                if proc.exitcode is None:
                    proc.kill()
                    proc.join(timeout=5)
        else:
            self.pool.shutdown(wait=True)
        # What the workers recorded after the last look is taken in when the build
        # lets go of its state (State.unlock), or by the next build.


def _died(step: str, status: str) -> WorkerDied:
    return WorkerDied(f"the worker process running `{step}` died ({status})")


class DaskRunner(Runner):
    """Steps as tasks on a Dask cluster: a LocalCluster on 127.0.0.1 (`--executor dask`)
    or a running scheduler (`dask://HOST:PORT`). Only ready steps are submitted, so
    staleness, early cutoff and recording stay here."""

    def __init__(self, address: str | None, size: int):
        from .extras import require

        distributed = require("distributed", "--executor dask", "dask.distributed")
        Client, LocalCluster = distributed.Client, distributed.LocalCluster
        if address is None:
            import logging

            # Dask's own chatter (cancelled tasks, restarted workers) is not ours to print.
            self.cluster = LocalCluster(n_workers=size, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        else:
            self.cluster = None
            try:
                self.client = Client(address, timeout=10)
            except OSError as e:
                raise UsageError("dask-unreachable", address=address, reason=e) from None
        self.size = max(1, sum(self.client.nthreads().values()))
        self._futures: dict[Any, Any] = {}
        self._queue = None

    def queue(self) -> Any:
        if self._queue is None:
            from distributed import Queue

            self._queue = Queue(client=self.client)
        return self._queue

    def submit(self, job: Job, ctx: Context | None, on_partitions) -> Any:
        from .worker import run_job

        fut = self.client.submit(run_job, job, pure=False, key=f"datamake-{job.step}-{time.time_ns()}")
        self._futures[fut.key] = fut
        return fut.key

    def wait(self, on_partitions) -> list[tuple[Any, Any]]:
        from distributed import wait

        while True:
            try:
                res = wait(list(self._futures.values()), timeout=0.2,
                           return_when="FIRST_COMPLETED")
                done = list(res.done)
            except TimeoutError:
                done = []
            self._drain(on_partitions)
            if done:
                break
        out = []
        for fut in done:
            del self._futures[fut.key]
            try:
                out.append((fut.key, fut.result()))
            except BaseException as e:  # noqa: BLE001 - the build reports it
                out.append((fut.key, e))
        return out

    def _drain(self, on_partitions) -> None:
        if self._queue is None:
            return
        n = self._queue.qsize()
        if n:
            on_partitions([tuple(e) for e in self._queue.get(batch=n)])

    def close(self, cancel: bool = False) -> None:
        for fut in self._futures.values():
            fut.cancel()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def runner_factory(project: "Project", rules: list[RuleNode], jobs: int,
                   executor: str) -> "Callable[[], Runner]":
    """What starts the runner for `-j` and `--executor`. Raises UsageError at once for an
    unknown executor, or a remote cluster that could not see the build's local files."""
    jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
    if executor in ("", "local"):
        if jobs == 1:
            return lambda: InlineRunner()
        return lambda: PoolRunner(jobs, project.state.take_worker_records)
    if executor == "dask":
        return lambda: DaskRunner(None, jobs)
    if executor.startswith("dask://"):
        address = executor[len("dask://"):]
        host = address.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::1"):
            local = sorted({n for node in rules for n in (*node.inputs, *node.outputs)
                            if n in project.graph.datasets
                            and project.catalog.location(n).local})
            if local:
                shown = ", ".join(f"`{n}` ({project.catalog.shown(project.catalog.location(n))})"
                                  for n in local[:5]) + (" ..." if len(local) > 5 else "")
                raise UsageError("dask-local-files", address=address, datasets=shown)
        return lambda: DaskRunner(f"tcp://{address}", jobs)
    raise UsageError("unknown-executor", executor=executor)
