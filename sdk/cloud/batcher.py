"""Dynamic batching across cameras: jobs queue up, one worker runs them in batches.

A batch closes when it holds `max_batch` jobs, when `max_wait_s` has passed since its first job
arrived, or when it already holds every job that could still come (`in_pipeline()`: the number of
cameras with a frame being read or waiting for its result), whichever is first. A lone camera is
therefore not made to wait for companions that do not exist, and a busy receiver fills batches.
The batch function runs in a dedicated one-thread executor (TensorFlow and SQLite both want a single
owner thread); the event loop stays free to read frames meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")


@dataclass
class _Pending(Generic[J, R]):
    job: J
    future: asyncio.Future[R]
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher(Generic[J, R]):
    """Runs `process(jobs) -> results` (same length, same order) on batches of submitted jobs."""

    def __init__(
        self,
        process: Callable[[list[J]], list[R]],
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int, list[float]], None] | None = None,
        in_pipeline: Callable[[], int] | None = None,
    ) -> None:
        self._process = process
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        self._on_batch = on_batch
        self._in_pipeline = in_pipeline
        self._queue: asyncio.Queue[_Pending[J, R]] = asyncio.Queue()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="splitsdk-batch")
        self._worker: asyncio.Task[None] | None = None
        self.in_flight = 0

    @property
    def depth(self) -> int:
        """Jobs waiting plus jobs being processed."""
        return self._queue.qsize() + self.in_flight

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="splitsdk-batcher")

    async def submit(self, job: J) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(job, future))
        return await future

    async def run_in_worker(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the batch thread (for work that must share its owner, e.g. SQLite)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _collect(self) -> list[_Pending[J, R]]:
        batch = [await self._queue.get()]
        deadline = batch[0].enqueued + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            if self._in_pipeline is not None and len(batch) >= self._in_pipeline():
                break  # nobody else has a frame on the way
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            self.in_flight = len(batch)
            started = time.perf_counter()
            if self._on_batch is not None:
                self._on_batch(len(batch), [started - p.enqueued for p in batch])
            try:
                results = await loop.run_in_executor(self._executor, self._process, [p.job for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} jobs")
            except Exception as exc:  # every waiter learns of the failure; the worker goes on
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
            else:
                for p, r in zip(batch, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(r)
            finally:
                self.in_flight = 0

    async def close(self) -> None:
        """Finish queued jobs, then stop the worker and its thread."""
        while self._queue.qsize() or self.in_flight:
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)
