"""UUIDv7 event ids (RFC 9562 §5.7): 48-bit Unix ms, version 7, a 12-bit counter, variant, 62 random bits.

Within one generator ids are strictly increasing (RFC 9562 §6.2 method 1): ``rand_a`` is a counter
started at a random value below 2**11 each new millisecond and incremented within one; if the clock goes
backwards or the counter overflows, the previous timestamp is reused or advanced by one millisecond, so
order never breaks. Across processes ids are ordered by time only to the millisecond; the log's ``seq``
is the authoritative order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["Uuid7", "uuid7_time_ms"]

_COUNTER_MAX = 0xFFF


class Uuid7:
    """A thread-safe, monotonic UUIDv7 generator. ``random`` is injectable for tests."""

    def __init__(self, *, random: Callable[[int], bytes] = os.urandom) -> None:
        """Start a generator; ``random(n)`` returns ``n`` random bytes."""
        self._random = random
        self._pool = b""  # random bytes drawn 4 KB at a time: one getrandom() per ~400 ids
        self._pos = 0
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self, unix_ms: int) -> str:
        """A new id for a time in Unix milliseconds, greater than every id this generator made before."""
        with self._lock:
            if self._pos + 10 > len(self._pool):
                self._pool, self._pos = self._random(4000), 0
            rand = self._pool[self._pos : self._pos + 10]
            self._pos += 10
            if unix_ms > self._last_ms:
                self._last_ms = unix_ms
                self._counter = int.from_bytes(rand[:2], "big") & 0x7FF
            else:
                self._counter += 1
                if self._counter > _COUNTER_MAX:
                    self._last_ms += 1
                    self._counter = int.from_bytes(rand[:2], "big") & 0x7FF
            ms, counter = self._last_ms, self._counter
        if not 0 <= ms < 1 << 48:
            raise ValueError("UUIDv7 timestamps cover 1970 to 10889")
        tail = int.from_bytes(rand[2:], "big") & ((1 << 62) - 1)
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_time_ms(uuid: str) -> int:
    """The Unix-millisecond timestamp of a UUIDv7 string.

    Raises:
        ValueError: not a UUIDv7.
    """
    h = uuid.replace("-", "")
    if len(uuid) != 36 or len(h) != 32 or h[12] != "7" or h[16] not in "89ab":
        raise ValueError(f"{uuid!r} is not a UUIDv7")
    return int(h[:12], 16)
