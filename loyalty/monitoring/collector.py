"""The health snapshot as Prometheus metrics, read from the database at scrape time.

:class:`HealthCollector` takes one :func:`~loyalty.monitoring.snapshot.take_snapshot` per
scrape and serves it as:

===========================================  =====================================================
``jifen_up``                                 1 when the snapshot could be read, else 0 (and
                                             none of the series below)
``jifen_job_lag_seconds{job}``               seconds since the job's last successful run
                                             (jobs that succeeded at least once)
``jifen_job_last_success_timestamp_seconds``  when that run ended (Unix time)
``jifen_job_overdue{job}``                   1 when the job never succeeded, or not within
                                             its period plus its time-out
``jifen_outbox_backlog{program}``            outbound events not dispatched yet
``jifen_webhook_deliveries_pending{program}`` webhook deliveries waiting to be sent
``jifen_webhook_deliveries_failed{program}``  webhook deliveries that gave up (to replay)
``jifen_stripe_events_parked{program}``      Stripe events parked, waiting for a member or
                                             a purchase
``jifen_risk_cases_open{program}``           risk cases waiting for review
``jifen_points_expired_total``,              points the expire, clear/clear_year and mature
``jifen_points_cleared_total``,              jobs moved, summed over their runs in
``jifen_points_matured_total``               ``job_runs`` (derived: see
                                             :mod:`loyalty.monitoring.metrics`)
===========================================  =====================================================

Nothing here is kept between scrapes, so it is the same whichever worker answers; in
multi-process mode it is not written to the value files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from loyalty.db.database import Database
from loyalty.monitoring.snapshot import HealthSnapshot, take_snapshot

log = logging.getLogger("jifen.monitoring")


class HealthCollector:
    """A Prometheus collector of :func:`take_snapshot` over ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = take_snapshot(self.db)
        except Exception:
            log.warning("metrics: the health snapshot could not be read", exc_info=True)
            yield GaugeMetricFamily("jifen_up", "Whether the database could be read.", value=0)
            return
        yield GaugeMetricFamily("jifen_up", "Whether the database could be read.", value=1)
        yield from job_metrics(snapshot)
        yield from backlog_metrics(snapshot)
        yield from sweep_metrics(snapshot)


def job_metrics(snapshot: HealthSnapshot) -> Iterator[Metric]:
    """Lag, last success and overdue flag of every scheduled job."""
    lag = GaugeMetricFamily(
        "jifen_job_lag_seconds", "Seconds since the job last succeeded.", labels=["job"]
    )
    last = GaugeMetricFamily(
        "jifen_job_last_success_timestamp_seconds",
        "When the job's last successful run ended (Unix time).",
        labels=["job"],
    )
    overdue = GaugeMetricFamily(
        "jifen_job_overdue",
        "1 when the job never succeeded or not within its period plus its time-out.",
        labels=["job"],
    )
    for job in snapshot.jobs:
        if job.lag_seconds is not None and job.last_success_at is not None:
            lag.add_metric([job.job], job.lag_seconds)
            last.add_metric([job.job], job.last_success_at.timestamp())
        overdue.add_metric([job.job], 1 if job.overdue else 0)
    yield from (lag, last, overdue)


# (metric, help, ProgramBacklog field)
BACKLOGS = (
    ("jifen_outbox_backlog", "Outbound events not dispatched yet.", "outbox"),
    ("jifen_webhook_deliveries_pending", "Webhook deliveries to send.", "webhooks_pending"),
    ("jifen_webhook_deliveries_failed", "Webhook deliveries that gave up.", "webhooks_failed"),
    ("jifen_stripe_events_parked", "Stripe events parked for later.", "stripe_parked"),
    ("jifen_risk_cases_open", "Risk cases open for review.", "risk_open"),
)


def backlog_metrics(snapshot: HealthSnapshot) -> Iterator[Metric]:
    """Each program's backlogs, one gauge each."""
    for name, documentation, field in BACKLOGS:
        gauge = GaugeMetricFamily(name, documentation, labels=["program"])
        for program in snapshot.programs:
            gauge.add_metric([program.program], getattr(program, field))
        yield gauge


def sweep_metrics(snapshot: HealthSnapshot) -> Iterator[Metric]:
    """The points the sweeps moved, as counters."""
    for what, points in sorted(snapshot.sweep_points.items()):
        yield CounterMetricFamily(
            f"jifen_points_{what}",
            f"Points {what} by the sweeps, summed over their runs in job_runs.",
            value=points,
        )
