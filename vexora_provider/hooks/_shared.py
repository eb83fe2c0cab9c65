"""Objects shared by every session on one event loop: connection pools and budget clients.

A triggerer runs every trigger on one event loop; each trigger opening its own HTTP pool (and its
own Redis client for the shared budget) means hundreds of pools holding connections to the same
host. :class:`LoopShared` hands the sessions of one loop the same object per key, made on first
use and closed when the last session using it leaves, so nothing outlives its users and nothing
crosses event loops (async clients belong to the loop that made them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["LoopShared"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    users: int = 0


class LoopShared(Generic[K, V]):
    """
    One value per event loop and key, shared by its users, closed when the last one leaves.

    :param close: closes a value nobody uses any more.
    """

    def __init__(self, close: Callable[[V], Awaitable[None]]) -> None:
        self._close = close
        self._entries: dict[tuple[asyncio.AbstractEventLoop, K], _Entry[V]] = {}

    @asynccontextmanager
    async def use(self, key: K, make: Callable[[], V]) -> AsyncIterator[V]:
        """Yield the value for ``key`` on the running loop; ``make`` it if no one holds it yet."""
        slot = (asyncio.get_running_loop(), key)
        entry = self._entries.get(slot)
        if entry is None:
            entry = self._entries[slot] = _Entry(make())
        entry.users += 1
        try:
            yield entry.value
        finally:
            entry.users -= 1
            if entry.users == 0:
                # Forgotten before closing: a session arriving meanwhile makes a fresh one.
                if self._entries.get(slot) is entry:
                    del self._entries[slot]
                await self._close(entry.value)

    def users(self, key: K) -> int:
        """How many users on the running loop hold the value for ``key`` (0 when none is open)."""
        entry = self._entries.get((asyncio.get_running_loop(), key))
        return entry.users if entry is not None else 0
