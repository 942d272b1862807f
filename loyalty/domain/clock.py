"""Injectable clocks. Nothing in Jifen reads the wall clock except :class:`SystemClock`."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from loyalty.domain.checks import require_aware


class Clock(Protocol):
    """Anything with a ``now()`` that returns an aware datetime."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that stands still until moved; for tests, demos and replays."""

    def __init__(self, at: dt.datetime) -> None:
        self._at = require_aware("at", at)

    def now(self) -> dt.datetime:
        return self._at

    def set(self, at: dt.datetime) -> None:
        """Move the clock to ``at``."""
        self._at = require_aware("at", at)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        self._at = self._at + delta
        return self._at
