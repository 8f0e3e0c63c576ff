"""A logging filter that lets each distinct message through at most once per interval."""

from __future__ import annotations

import logging
import time


class RateLimitFilter(logging.Filter):
    """Drop repeats of the same (level, format string) within ``interval_s``; count them."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[int, str], float] = {}
        self._dropped: dict[tuple[int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True to emit; a passed record notes how many repeats were dropped before it."""
        key = (record.levelno, str(record.msg))
        now = time.monotonic()
        if now - self._last.get(key, -self.interval_s - 1) < self.interval_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} like it suppressed)"
        if len(self._last) > 1000:  # bounded: messages are format strings, but be safe
            self._last.clear()
        return True
