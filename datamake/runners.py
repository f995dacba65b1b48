"""Where steps run: one at a time in the build's process, in a pool of worker
processes (`-j N`), or on a Dask cluster. A runner takes self-contained jobs and hands
back results (or the exception a job raised); it decides nothing and records nothing.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

from .errors import UsageError
from .graph import RuleNode
from .worker import Context, Job, run_job

if TYPE_CHECKING:
    from .project import Project


class Runner:
    """Where steps run. `submit` hands over a job; `wait` returns finished ones as
    (ticket, JobResult or the exception it raised)."""

    size = 1
    inline = False

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
        self._n += 1
        ticket = self._n

        def on_partition(key: str, path: str, stamp: str, digest: str) -> None:
            on_partitions([(job.step, key, path, stamp, digest)])  # recorded at once

        try:
            self._done.append((ticket, run_job(job, ctx, on_partition)))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # recipe failures and storage errors, reported by the build
            self._done.append((ticket, e))
        return ticket

    def wait(self, on_partitions) -> list[tuple[Any, Any]]:
        done, self._done = self._done, []
        return done


class PoolRunner(Runner):
    """Steps run in N worker processes (`-j N`): CPU-bound pandas and Python code needs
    processes, not threads. Workers load and save through the catalog themselves."""

    def __init__(self, size: int):
        import concurrent.futures
        import multiprocessing

        self.size = size
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        self._mp = ctx
        # Workers leave Ctrl-C to the build, which stops them itself (see close).
        self.pool = concurrent.futures.ProcessPoolExecutor(size, mp_context=ctx,
                                                           initializer=_ignore_sigint)
        self._futures: dict[Any, Any] = {}
        self._queue = None
        self._manager = None

    def queue(self) -> Any:
        if self._queue is None:
            self._manager = self._mp.Manager()
            self._queue = self._manager.Queue()
        return self._queue

    def submit(self, job: Job, ctx: Context | None, on_partitions) -> Any:
        fut = self.pool.submit(run_job, job)
        self._futures[fut] = fut
        return fut

    def wait(self, on_partitions) -> list[tuple[Any, Any]]:
        import concurrent.futures

        while True:
            done, _ = concurrent.futures.wait(list(self._futures), timeout=0.1,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            self._drain(on_partitions)
            if done:
                break
        out = []
        for fut in done:
            del self._futures[fut]
            try:
                out.append((fut, fut.result()))
            except BaseException as e:  # noqa: BLE001 - the build reports it
                out.append((fut, e))
        return out

    def _drain(self, on_partitions) -> None:
        if self._queue is None:
            return
        import queue as _q

        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except _q.Empty:
                break
        if events:
            on_partitions(events)

    def close(self, cancel: bool = False) -> None:
        for fut in self._futures:
            fut.cancel()
        if cancel:
            # Interrupted: stop the workers now. A recipe killed mid-way leaves at most a
            # temporary file in .datamake/tmp, which the next build removes.
            procs = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(timeout=10)
        else:
            self.pool.shutdown(wait=True)
        if self._manager is not None:
            self._manager.shutdown()


class DaskRunner(Runner):
    """Steps as tasks on a Dask cluster: a LocalCluster on 127.0.0.1 (`--executor dask`)
    or a running scheduler (`dask://HOST:PORT`). Only ready steps are submitted, so
    staleness, early cutoff and recording stay here."""

    def __init__(self, address: str | None, size: int):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageError("--executor dask needs dask.distributed",
                             help='install it: pip install "datamake[dask]"') from None
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
                raise UsageError(f"cannot reach the Dask scheduler at `{address}`: {e}") from None
        self.size = max(1, sum(self.client.nthreads().values()))
        self._futures: dict[Any, Any] = {}
        self._queue = None

    def queue(self) -> Any:
        if self._queue is None:
            from distributed import Queue

            self._queue = Queue(client=self.client)
        return self._queue

    def submit(self, job: Job, ctx: Context | None, on_partitions) -> Any:
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


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def runner_factory(project: "Project", rules: list[RuleNode], jobs: int,
                   executor: str) -> "Callable[[], Runner]":
    """What starts the runner for `-j` and `--executor`. Raises UsageError at once for an
    unknown executor, or a remote cluster that could not see the build's local files."""
    jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
    if executor in ("", "local"):
        return (lambda: InlineRunner()) if jobs == 1 else (lambda: PoolRunner(jobs))
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
                raise UsageError(
                    f"the Dask workers at `{address}` cannot see this machine's files: {shown}",
                    help="put those datasets on storage the workers share (e.g. s3://...), "
                         "or run with `--executor dask` (a local cluster)")
        return lambda: DaskRunner(f"tcp://{address}", jobs)
    raise UsageError(f"unknown executor `{executor}`",
                     help="use `local`, `dask` or `dask://HOST:PORT`")
