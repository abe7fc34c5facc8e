"""Calls made by requests in the same event-loop iteration, sent to Redis in one round trip.

Under load, several searches of one API process reach their Redis call in the same iteration of the event loop.
Each alone costs a socket write and a read on both sides (in redis-py, a pool checkout, a pack, a timeout per
reply); together, one pipeline carries them all. ``Coalescer`` gathers them: the first caller of an iteration
waits one iteration (``asyncio.sleep(0)``: every task already ready runs first), then sends what gathered, alone
(``one``) or in one batch (``many``, each item's result or exception, in order), and hands each caller its own
result. A caller alone pays one loop iteration more; a failure of the batch's connection reaches every caller
of it, as it would have reached each alone (nothing is sent again here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError

T = TypeVar("T")


class Coalescer(Generic[T]):
    def __init__(self, one: Callable[[T], Awaitable[Any]], many: Callable[[list[T]], Awaitable[list[Any]]]) -> None:
        self.one, self.many = one, many
        self.batches = 0  # round trips that carried more than one call
        self.batched = 0  # calls they carried
        self._open: list[tuple[T, asyncio.Future[Any] | None]] | None = None

    async def __call__(self, item: T) -> Any:
        if self._open is not None:  # a batch is gathering in this iteration: join it
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._open.append((item, fut))
            return await fut
        batch: list[tuple[T, asyncio.Future[Any] | None]] = [(item, None)]
        self._open = batch
        try:
            await asyncio.sleep(0)
        except BaseException:
            self._open = None
            if len(batch) > 1:  # this caller went away: the others are still sent
                asyncio.get_running_loop().create_task(self._send([(i, f) for i, f in batch[1:] if f]))
            raise
        self._open = None
        if len(batch) == 1:
            return await self.one(item)
        self.batches += 1
        self.batched += len(batch)
        followers = [(i, f) for i, f in batch[1:] if f is not None]
        try:
            results = await self.many([i for i, _ in batch])
        except BaseException as exc:
            _fail(followers, exc)
            raise
        _settle(followers, results[1:])
        first = results[0]
        if isinstance(first, BaseException):
            raise first
        return first

    async def _send(self, batch: list[tuple[T, asyncio.Future[Any]]]) -> None:
        try:
            results = await self.many([i for i, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to each caller
            _fail(batch, exc)
            return
        _settle(batch, results)


def _settle(waiting: list[tuple[Any, asyncio.Future[Any]]], results: list[Any]) -> None:
    for (_, fut), res in zip(waiting, results, strict=True):
        if fut.done():  # its caller went away
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)


def _fail(waiting: list[tuple[Any, asyncio.Future[Any]]], exc: BaseException) -> None:
    err = exc if isinstance(exc, Exception) else RedisConnectionError("the batch carrying this call was cancelled")
    for _, fut in waiting:
        if not fut.done():
            fut.set_exception(err)
