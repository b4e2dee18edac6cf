"""Adaptive micro-batching, as MLServer and Triton do it, minus the failure mode of holding lone requests.

A request that finds the model idle first yields once to the event loop, so that requests read in the same loop
turn reach the batcher too. If it is still alone, it is predicted inline on the loop: no thread hop, no timer, so
a lone request costs what it costs unbatched (p95 never pays a batching delay). Otherwise the waiting requests go
to one worker thread as one ``predict``; while a batch runs, new requests pile up and the next batch grows by
itself, up to ``max_batch`` rows. An optional ``max_delay`` lets a *non-lone* batch wait a little for more company.
Light traffic is therefore served inline and heavy traffic in batches, with no setting to tune between them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from .rows import Rows, model_input


@dataclass
class Result:
    outputs: dict[str, Any]
    queue_s: float
    proc_s: float
    batch_size: int
    diverted: bool = False  # answered by the divert's model (a canary's draw), not the batcher's own


class Divert(Protocol):
    """Another model that may answer a request instead of the batcher's own: a canary's candidate. ``draw`` is
    asked once per batch (once per request when it runs alone), so the candidate's requests are batched as the
    champion's are; its share of requests is still the draw's probability."""

    model: Any

    def draw(self) -> bool: ...


class DivertedError(Exception):
    """An error raised by the divert's model, so the caller charges the version that really refused."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Item:
    rows: Rows
    outputs: tuple[str, ...]
    enqueued: float
    future: asyncio.Future[Result]
    divert: Divert | None = None


def run_outputs(model: Any, rows: Rows, outputs: tuple[str, ...]) -> dict[str, Any]:
    data = model_input(model, rows)
    out: dict[str, Any] = {}
    for name in outputs:
        fn = getattr(model, name, None)
        if fn is None:
            raise AttributeError(f"this model has no {name}")
        out[name] = np.asarray(fn(data))
    return out


class MicroBatcher:
    def __init__(self, model: Any, *, max_batch: int = 64, max_delay: float = 0.0) -> None:
        self.model = model
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._waiting: deque[_Item] = deque()
        self._busy = False  # a batch is being predicted on the worker thread
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: predict holds the GIL anyway, and the event loop must stay free to read the requests that
        # arrive during a batch, or they could never form the next one.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mm-batch")

    async def submit(self, rows: Rows, outputs: tuple[str, ...], divert: Divert | None = None) -> Result:
        """Predict ``rows``; with ``divert``, the batch it joins may be answered by the divert's model instead."""
        loop = asyncio.get_running_loop()
        item = _Item(rows, outputs, time.perf_counter(), loop.create_future(), divert)
        self._waiting.append(item)
        if not self._busy and len(self._waiting) == 1:
            await asyncio.sleep(0)  # requests read in the same loop turn get here now, and join this one
            if not self._busy and len(self._waiting) == 1 and self._waiting[0] is item:
                self._waiting.clear()
                if divert is not None and divert.draw():
                    try:
                        return replace(predict_now(divert.model, rows, outputs, item.enqueued), diverted=True)
                    except Exception as exc:
                        raise DivertedError(exc) from exc
                return predict_now(self.model, rows, outputs, item.enqueued)
        self._kick(loop)
        return await item.future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._worker())
        assert self._wake is not None
        self._wake.set()

    async def _worker(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = [self._waiting.popleft()]
                rows = len(batch[0].rows)
                while self._waiting and rows < self.max_batch:
                    batch.append(self._waiting.popleft())
                    rows += len(batch[-1].rows)
                if self.max_delay and len(batch) > 1:
                    deadline = time.perf_counter() + self.max_delay
                    while rows < self.max_batch and (left := deadline - time.perf_counter()) > 0:
                        if not self._waiting:
                            try:
                                await asyncio.wait_for(self._wake.wait(), left)
                            except TimeoutError:
                                break
                            self._wake.clear()
                            continue
                        batch.append(self._waiting.popleft())
                        rows += len(batch[-1].rows)
                divert = next((i.divert for i in batch if i.divert is not None), None)
                diverted = divert is not None and divert.draw()  # one draw for the batch
                groups: dict[tuple[tuple[str, ...], bool], list[_Item]] = {}
                for item in batch:
                    groups.setdefault((item.outputs, diverted and item.divert is not None), []).append(item)
                self._busy = True
                try:
                    for (outputs, other), items in groups.items():
                        await self._run(loop, outputs, items, divert if other else None)
                finally:
                    self._busy = False

    async def _run(
        self, loop: asyncio.AbstractEventLoop, outputs: tuple[str, ...], items: list[_Item], divert: Divert | None
    ) -> None:
        start = time.perf_counter()
        rows = Rows.concat([i.rows for i in items])
        model = divert.model if divert is not None else self.model
        try:
            result = await loop.run_in_executor(self._pool, run_outputs, model, rows, outputs)
        except Exception as exc:
            if len(items) > 1:  # one bad request must not fail its neighbours: retry them one by one
                for item in items:
                    await self._run(loop, outputs, [item], divert)
                return
            if not items[0].future.done():
                items[0].future.set_exception(DivertedError(exc) if divert is not None else exc)
            return
        proc = time.perf_counter() - start
        offset = 0
        for item in items:
            n = len(item.rows)
            part = {k: v[offset : offset + n] for k, v in result.items()}
            offset += n
            if not item.future.done():
                item.future.set_result(Result(part, start - item.enqueued, proc, len(items), divert is not None))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def predict_now(model: Any, rows: Rows, outputs: tuple[str, ...], enqueued: float) -> Result:
    """The unbatched path: predict inline, no thread hop (fastest for a lone request)."""
    start = time.perf_counter()
    out = run_outputs(model, rows, outputs)
    return Result(out, start - enqueued, time.perf_counter() - start, 1)
