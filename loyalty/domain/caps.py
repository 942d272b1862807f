"""Earning caps: how many of the requested points fit under the member's and program's caps."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty.domain.calendar import Periods
from loyalty.domain.rules import Caps


@dataclass(frozen=True)
class CapUsage:
    """Points a member already earned in the current local day, month and year.

    ``day_key``/``month_key``/``year_key`` say which period each counter belongs to; a counter
    for an older period counts as zero.
    """

    day_key: str | None = None
    day_points: int = 0
    month_key: str | None = None
    month_points: int = 0
    year_key: str | None = None
    year_points: int = 0

    def current(self, periods: Periods) -> tuple[int, int, int]:
        """The day, month and year usage that applies to ``periods``."""
        return (
            self.day_points if self.day_key == periods.day else 0,
            self.month_points if self.month_key == periods.month else 0,
            self.year_points if self.year_key == periods.year else 0,
        )

    def plus(self, periods: Periods, points: int) -> CapUsage:
        """The usage after ``points`` more are granted in ``periods``."""
        day, month, year = self.current(periods)
        return CapUsage(
            periods.day, day + points, periods.month, month + points, periods.year, year + points
        )


@dataclass(frozen=True)
class CapDecision:
    """Points granted and, if fewer than requested, the name of the cap that cut them."""

    granted: int
    capped_by: str | None


def apply_member_caps(requested: int, caps: Caps, usage: CapUsage, periods: Periods) -> CapDecision:
    """Grant as many of ``requested`` points as the member's day, month and year caps allow."""
    day, month, year = usage.current(periods)
    room = {
        "member_daily": None if caps.member_daily is None else caps.member_daily - day,
        "member_monthly": None if caps.member_monthly is None else caps.member_monthly - month,
        "member_yearly": None if caps.member_yearly is None else caps.member_yearly - year,
    }
    return _tightest(requested, room)


def apply_program_budget(requested: int, budget: int | None, issued_today: int) -> CapDecision:
    """Grant as many points as the program's remaining daily budget allows."""
    return _tightest(
        requested, {"program_daily": None if budget is None else budget - issued_today}
    )


def _tightest(requested: int, room: dict[str, int | None]) -> CapDecision:
    limits = [(max(r, 0), name) for name, r in room.items() if r is not None]
    if not limits:
        return CapDecision(requested, None)
    space, name = min(limits)
    if space >= requested:
        return CapDecision(requested, None)
    return CapDecision(space, name)
