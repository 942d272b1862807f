"""What every ledger write reports: its metrics and one log line.

:func:`loyalty.services.writes.run_write` wraps each write in a :class:`WriteTrace`
(:func:`trace_write`); the member lock names the program and the member on it
(:func:`note_subject`), and the trace reports once the write is done:

* ``jifen_ledger_operations_total{kind, outcome}``, ``jifen_ledger_operation_seconds{kind}``,
  on error ``jifen_ledger_errors_total{code}``, and the points issued or redeemed (see
  :mod:`loyalty.monitoring.metrics`);
* a log line on the ``jifen.ledger`` logger, at INFO (done, replayed, or refused for the
  request's sake) or WARNING (a failure: a database error, a bug): ``kind``, ``key``,
  ``program``, ``member``, ``points`` (when the result has them), ``outcome`` and
  ``duration_ms``; the request id joins it from the logging filter.

Cheap on purpose: two counter increments and one histogram observation, on label children
looked up once per kind and outcome; the log line costs nothing unless INFO is enabled.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from loyalty.errors import LoyaltyError
from loyalty.monitoring.metrics import (
    ERRORS,
    OPERATIONS,
    POINTS_ISSUED,
    POINTS_REDEEMED,
    WRITE_SECONDS,
)

log = logging.getLogger("jifen.ledger")

# The operation kinds whose results credit or spend points (see loyalty.services).
EARN_KINDS = frozenset({"earn_purchase", "earn_action"})
GRANT_KIND = "adjust"
CAPTURE_KIND = "capture"
REWARD_KIND = "reward_redeem"
RETRY = "retry"  # a lost race the unit of work runs again: not an error
UNEXPECTED = "unexpected"  # an exception outside Jifen's error tree

_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def _child(metric: MetricWrapperBase, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once (``labels()`` takes a lock each call)."""
    try:
        return _children[metric, labels]
    except KeyError:
        child = _children[metric, labels] = metric.labels(*labels)
        return child


class WriteTrace:
    """One ledger write being done: its kind, key, start, and who it is about."""

    __slots__ = ("key", "kind", "member", "program", "started")

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        self.program: str | None = None
        self.member: str | None = None
        self.started = time.perf_counter()

    def succeeded(self, result: Any) -> None:
        """Report a write that answered ``result`` (replayed or not)."""
        replayed = bool(getattr(result, "replayed", False))
        outcome = "replayed" if replayed else "ok"
        seconds = self._count(outcome)
        if not replayed:
            _count_points(self.kind, result)
        if log.isEnabledFor(logging.INFO):
            self._log(logging.INFO, outcome, seconds, points_of(result))

    def failed(self, error: BaseException, *, retried: bool = False) -> None:
        """Report a write that raised ``error`` (``retried``: a lost race that its unit of
        work runs again, not an error)."""
        outcome = RETRY if retried else outcome_of(error)
        seconds = self._count(outcome)
        if outcome != RETRY:
            _child(ERRORS, outcome).inc()
        level = logging.WARNING if _is_failure(error, outcome) else logging.INFO
        if log.isEnabledFor(level):
            self._log(level, outcome, seconds, None)

    def _count(self, outcome: str) -> float:
        seconds = time.perf_counter() - self.started
        _child(OPERATIONS, self.kind, outcome).inc()
        _child(WRITE_SECONDS, self.kind).observe(seconds)
        return seconds

    def _log(self, level: int, outcome: str, seconds: float, points: int | None) -> None:
        fields = {
            "kind": self.kind,
            "key": self.key,
            "program": self.program,
            "member": self.member,
            "points": points,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 3),
        }
        log.log(level, "ledger write %s %s", self.kind, outcome, extra=fields)


_current: ContextVar[WriteTrace | None] = ContextVar("jifen_write_trace", default=None)


def trace_write(kind: str, key: str) -> tuple[WriteTrace, Any]:
    """Start tracing a write; the trace and the token to give :func:`end_trace`."""
    trace = WriteTrace(kind, key)
    return trace, _current.set(trace)


def end_trace(token: Any) -> None:
    """Stop tracing the write started with ``token`` (the enclosing one, if any, resumes)."""
    _current.reset(token)


def note_subject(program: str | None, member: str | None) -> None:
    """The program and member the write in progress is about (the first lock names them)."""
    trace = _current.get()
    if trace is not None and trace.member is None:
        trace.program = program
        trace.member = member


def outcome_of(error: BaseException) -> str:
    """The outcome label of a write that raised ``error``: its code in Jifen's error tree,
    else ``unexpected`` (a database failure, a bug)."""
    return error.code if isinstance(error, LoyaltyError) else UNEXPECTED


def _is_failure(error: BaseException, outcome: str) -> bool:
    """Whether a write's error is Jifen's or its database's fault (logged as a warning), not
    a refusal the caller's request earned (logged as information)."""
    if outcome == RETRY:
        return False
    return not isinstance(error, LoyaltyError) or error.http_status >= 500


def points_of(result: Any) -> int | None:
    """The points a write's result names (granted for an earn), or None."""
    granted = getattr(result, "points_granted", None)
    if granted is not None:
        return int(granted)
    points = getattr(result, "points", None)
    return int(points) if isinstance(points, int) else None


def _count_points(kind: str, result: Any) -> None:
    """Add what a (not replayed) write credited or spent to the points counters."""
    if kind in EARN_KINDS:
        issued = int(getattr(result, "points_granted", 0))
        if issued > 0:
            _child(POINTS_ISSUED, kind).inc(issued)
    elif kind == GRANT_KIND:
        granted = int(getattr(result, "points", 0))
        if granted > 0:
            _child(POINTS_ISSUED, kind).inc(granted)
    elif kind == CAPTURE_KIND:
        spent = int(getattr(result, "points", 0)) - int(getattr(result, "returned", 0))
        if spent > 0 and getattr(result, "status", "") == "captured":
            _child(POINTS_REDEEMED, kind).inc(spent)
    elif kind == REWARD_KIND:
        spent = int(getattr(result, "points", 0))
        if spent > 0:
            _child(POINTS_REDEEMED, kind).inc(spent)
