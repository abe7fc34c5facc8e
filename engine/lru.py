"""A least-recently-used map bounded by the bytes its values are reckoned to take (the availability caches)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BytesLru(Generic[K, V]):
    """``put`` takes each value's size in bytes; the least recently used values go once the sum passes
    ``max_bytes`` (``evictions`` counts them). A value larger than ``max_bytes`` is not kept (with 0, nothing is)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._map: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: K) -> bool:
        """Whether ``key`` is held, without touching its place in the order."""
        return key in self._map

    def peek(self, key: K) -> V | None:
        """The value of ``key``, without touching its place in the order."""
        hit = self._map.get(key)
        return None if hit is None else hit[0]

    def get(self, key: K) -> V | None:
        hit = self._map.get(key)
        if hit is None:
            return None
        self._map.move_to_end(key)
        return hit[0]

    def put(self, key: K, value: V, size: int) -> None:
        old = self._map.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return
        self._map[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and self._map:
            _, (_, dropped) = self._map.popitem(last=False)
            self.bytes -= dropped
            self.evictions += 1
