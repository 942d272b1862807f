"""Jifen's in-process Prometheus metrics and one scrape's exposition.

Counted where it happens, in the process that does it:

* every ledger write (:func:`loyalty.services.writes.run_write`, through
  :mod:`loyalty.monitoring.operations`): ``jifen_ledger_operations_total`` by operation kind
  and outcome (``ok``, ``replayed``, or the error's code), ``jifen_ledger_errors_total`` by
  code, and ``jifen_ledger_operation_seconds`` by kind;
* the points those writes moved, as their results say: ``jifen_points_issued_total`` (earns
  and manual grants, pending points included) and ``jifen_points_redeemed_total`` (captured
  holds less what the capture gave back at once, and reward redemptions). A replayed or
  refused write moves nothing and counts nothing.

Points expired, cleared and matured are *derived* instead (see
:mod:`loyalty.monitoring.collector`): the sweeps run in the RQ worker (a forked work horse
per job), in ``jifen sweep`` and in the console's "Run now", rarely in the process that is
scraped, and a counter of a process that exits is lost. Every door runs them through
:func:`loyalty.jobs.runs.run_job`, which records the points of each run in ``job_runs``, so
their sums are read from there at scrape time.

Several processes: gunicorn's workers each count their own share. With
``$PROMETHEUS_MULTIPROC_DIR`` set *before* ``prometheus_client`` is first imported, every
process writes its values to files there and :func:`registry` sums them (prometheus-client's
``MultiProcessCollector``); without it the process's own registry is served. ``jifen serve``
sets it up for its workers (:func:`use_multiprocess_dir`, :func:`clear_multiprocess_dir`,
:func:`worker_exited`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# A write takes about a millisecond on SQLite and a few on PostgreSQL; a slow one, seconds.
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

OPERATIONS = Counter(
    "jifen_ledger_operations",
    "Ledger writes by operation kind and outcome (ok, replayed, or the error code).",
    ["kind", "outcome"],
)
ERRORS = Counter(
    "jifen_ledger_errors",
    "Ledger writes refused or failed, by error code.",
    ["code"],
)
WRITE_SECONDS = Histogram(
    "jifen_ledger_operation_seconds",
    "Time one ledger write took (the service call, its transaction included), by kind.",
    ["kind"],
    buckets=WRITE_BUCKETS,
)
POINTS_ISSUED = Counter(
    "jifen_points_issued",
    "Points credited to members by earns and manual grants (pending points included).",
    ["kind"],
)
POINTS_REDEEMED = Counter(
    "jifen_points_redeemed",
    "Points members spent: captured holds (less what the capture gave back) and rewards.",
    ["kind"],
)


def multiprocess_dir() -> str | None:
    """The folder of multi-process mode, when it is on in this process."""
    return os.environ.get(MULTIPROC_ENV) or None


def use_multiprocess_dir(path: str) -> None:
    """Turn multi-process mode on in this process, before any metric has a value.

    prometheus-client picks where values live (memory, or files in the folder) when it is
    first imported; a launcher that decides later (``jifen serve`` with several workers)
    names the folder and has the client pick again. Only valid while no metric has a value
    yet: the master process never writes to the ledger.
    """
    os.makedirs(path, exist_ok=True)
    os.environ[MULTIPROC_ENV] = path
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def clear_multiprocess_dir(path: str) -> None:
    """Remove the value files a previous run left (they would be summed in otherwise)."""
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def worker_exited(pid: int) -> None:
    """Tell multi-process mode a worker is gone (its live gauges stop counting; its counters
    stay, so totals never go back)."""
    if multiprocess_dir():
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


class _Collected:
    """A collector yielding what other collectors (a whole registry) collect."""

    def __init__(self, sources: Iterable[Collector]) -> None:
        self.sources = tuple(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def registry(*extra: Collector) -> CollectorRegistry:
    """What one scrape serves: every process's metrics (multi-process mode) or this
    process's registry, plus ``extra`` collectors (read at scrape time)."""
    found = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(found)  # type: ignore[no-untyped-call]
    else:
        found.register(_Collected([REGISTRY]))
    for collector in extra:
        found.register(collector)
    return found


def exposition(accept: str | None, *extra: Collector) -> tuple[bytes, str]:
    """One scrape: the body and its content type, in the format ``accept`` asks for
    (Prometheus text by default, OpenMetrics when asked)."""
    encode, content_type = choose_encoder(accept or "")
    body: Any = encode(registry(*extra))
    return bytes(body), content_type
