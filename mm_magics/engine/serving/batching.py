"""Adaptive micro-batching, as MLServer and Triton do it, minus the failure mode of holding lone requests.

One worker per model takes whatever requests are waiting the moment it is free and runs them as one ``predict``.
Under light traffic the queue holds one request, which goes out at once (no timer, so p95 never pays a batching
delay); under load, requests pile up while a batch runs and the next batch grows by itself, up to ``max_batch``
rows. An optional ``max_delay`` lets a *non-lone* batch wait a little for more company.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Result:
    outputs: dict[str, Any]
    queue_s: float
    proc_s: float
    batch_size: int


@dataclass
class _Item:
    frame: pd.DataFrame
    outputs: tuple[str, ...]
    enqueued: float
    future: asyncio.Future[Result]


def run_outputs(model: Any, frame: pd.DataFrame, outputs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in outputs:
        fn = getattr(model, name, None)
        if fn is None:
            raise AttributeError(f"this model has no {name}")
        out[name] = np.asarray(fn(frame))
    return out


class MicroBatcher:
    def __init__(self, model: Any, *, max_batch: int = 64, max_delay: float = 0.0) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: predict holds the GIL anyway, and the event loop must stay free to read the requests that
        # arrive during a predict, or they could never form the next batch. (Predicting a lone request inline on
        # the loop would be faster at concurrency 1 but would serialise everything under load: each request would
        # find the queue empty because the others are still unread in their sockets.)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mm-batch")

    async def submit(self, frame: pd.DataFrame, outputs: tuple[str, ...]) -> Result:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._worker())
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(frame, outputs, time.perf_counter(), future))
        return await future

    async def _worker(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            rows = len(first.frame)
            while not self._queue.empty() and rows < self.max_batch:
                item = self._queue.get_nowait()
                batch.append(item)
                rows += len(item.frame)
            if self.max_delay and len(batch) > 1:
                deadline = time.perf_counter() + self.max_delay
                while rows < self.max_batch and (left := deadline - time.perf_counter()) > 0:
                    try:
                        item = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                    batch.append(item)
                    rows += len(item.frame)
            groups: dict[tuple[str, ...], list[_Item]] = {}
            for item in batch:
                groups.setdefault(item.outputs, []).append(item)
            for outputs, items in groups.items():
                await self._run(loop, outputs, items)

    async def _run(self, loop: asyncio.AbstractEventLoop, outputs: tuple[str, ...], items: list[_Item]) -> None:
        start = time.perf_counter()
        frame = items[0].frame if len(items) == 1 else pd.concat([i.frame for i in items], ignore_index=True)
        try:
            result = await loop.run_in_executor(self._pool, run_outputs, self.model, frame, outputs)
        except Exception as exc:
            if len(items) > 1:  # one bad request must not fail its neighbours: retry them one by one
                for item in items:
                    await self._run(loop, outputs, [item])
                return
            if not items[0].future.done():
                items[0].future.set_exception(exc)
            return
        proc = time.perf_counter() - start
        offset = 0
        for item in items:
            n = len(item.frame)
            part = {k: v[offset : offset + n] for k, v in result.items()}
            offset += n
            if not item.future.done():
                item.future.set_result(Result(part, start - item.enqueued, proc, len(items)))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def predict_now(model: Any, frame: pd.DataFrame, outputs: tuple[str, ...], enqueued: float) -> Result:
    """The unbatched path: predict inline, no thread hop (fastest for a lone request)."""
    start = time.perf_counter()
    out = run_outputs(model, frame, outputs)
    return Result(out, start - enqueued, time.perf_counter() - start, 1)
