"""The dashboard: points issued (above the line) and redeemed, expired and cleared (below it)
per day, the net over the period, the liability, what expires within 90 days and its share of
what members hold, members and the top earners; with tiers, how many members hold each.

Above them, a health strip: each scheduled job's lag since its last success (worst first,
red when overdue), the program's outbox and webhook backlogs, failed deliveries, open risk
cases and parked Stripe events, each linking to the page that shows it. It reads
:func:`~loyalty.monitoring.snapshot.take_snapshot`, as ``/metrics`` does.

Everything the page says is in the request's language: the charts' titles and series, the
strip's labels (each job by its word, :mod:`admin.job_words`), durations and hints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from markupsafe import Markup

from admin.charts import Series, bar_chart, flow_chart, line_chart
from admin.formatting import points
from admin.job_words import job_word
from admin.views.base import ConsoleIndexView, expose
from loyalty.monitoring.snapshot import HealthSnapshot, JobLag, take_snapshot
from loyalty.services import tier_distribution, tiers_in_force
from loyalty.services.console_queries import Dashboard, dashboard
from loyalty.services.results import ProgramInfo
from loyalty.services.tier_results import TierCount
from loyalty.services.uow import Target

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

EXPIRY_WINDOW = 90


def share_text(part: int, whole: int) -> str:
    """``part`` as a whole percentage of ``whole`` ("93 %"), "<1 %" for a sliver, "" without
    a whole; never 100 % unless it is all."""
    if whole <= 0:
        return ""
    if 0 < part * 100 < whole:
        return _("<%(percent)s %%", percent=1)
    return _("%(percent)s %%", percent=part * 100 // whole)


def _flows_chart(figures: Dashboard, labels: list[str]) -> Markup:
    return flow_chart(
        _(
            "Points per day, last 90 days: issued above the line; redeemed, expired and cleared "
            "below it"
        ),
        labels,
        [Series(_("issued"), [d.issued for d in figures.days], "#2c7be5")],
        [
            Series(_("redeemed"), [d.redeemed for d in figures.days], "#18bc9c"),
            Series(_("expired"), [d.expired for d in figures.days], "#e5a52c"),
            Series(_("cleared"), [d.cleared for d in figures.days], "#d9534f"),
        ],
    )


def tier_counts(db: Target, program: ProgramInfo) -> list[TierCount]:
    """Members per tier now, lowest tier first; empty when the program has no tiers."""
    if tiers_in_force(db, program=program.code) is None:
        return []
    return tier_distribution(db, program=program.code)


def tier_chart(counts: list[TierCount]) -> Markup | None:
    """Members per tier as bars; None without tiers."""
    if not counts:
        return None
    return bar_chart(
        _("Members per tier now"),
        [c.name for c in counts],
        [Series(_("members"), [c.members for c in counts], "#6f42c1")],
        max_labels=len(counts),
    )


@dataclass(frozen=True)
class HealthItem:
    """One entry of the health strip: what, how much, whether it needs attention, and the
    page that shows it (None: no page, or not for this role)."""

    key: str
    label: str
    value: str
    alert: bool
    url: str | None = None
    title: str = ""


def duration_text(seconds: float) -> str:
    """A duration as a person reads it: "40 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    whole = int(seconds)
    if whole < 60:
        return _("%(n)s s", n=whole)
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if whole < 3600:
        return _("%(n)s min", n=minutes)
    if whole < 86400:
        rest = minutes % 60
        if rest:
            return _("%(hours)s h %(minutes)s min", hours=hours, minutes=rest)
        return _("%(n)s h", n=hours)
    rest = hours % 24
    if rest:
        return _("%(days)s d %(hours)s h", days=days, hours=rest)
    return _("%(n)s d", n=days)


def _link(endpoint: str, **args: Any) -> str | None:
    """The URL of a console page, when it exists and the signed-in person may open it."""
    if endpoint not in current_app.view_functions:
        return None
    admins = current_app.extensions.get("admin") or []
    views = admins[0]._views if admins else []
    page = next((v for v in views if v.endpoint == endpoint.partition(".")[0]), None)
    if page is not None and not page.is_accessible():
        return None
    return url_for(endpoint, **args)


def job_item(lag: JobLag) -> HealthItem:
    """A job's entry: its lag, red when overdue."""
    if lag.lag_seconds is None:
        value = _("never ran")
    else:
        value = _("%(duration)s ago", duration=duration_text(lag.lag_seconds))
    title = _(
        "runs every %(every)s; overdue after %(allowed)s without a successful run",
        every=duration_text(lag.every_seconds),
        allowed=duration_text(lag.allowed_seconds),
    )
    label = job_word(lag.job)
    return HealthItem(f"job-{lag.job}", label, value, lag.overdue, _link("jobs.index"), title)


def health_items(
    snapshot: HealthSnapshot, program: str
) -> tuple[list[HealthItem], list[HealthItem]]:
    """The strip's jobs (worst first) and the program's backlogs."""
    backlog = snapshot.program(program)
    webhooks = _link("webhooks_out.index")
    waiting = [
        HealthItem("outbox", _("events to send"), points(backlog.outbox), False, webhooks),
        HealthItem(
            "webhooks-pending",
            _("deliveries pending"),
            points(backlog.webhooks_pending),
            False,
            webhooks,
        ),
        HealthItem(
            "webhooks-failed",
            _("deliveries failed"),
            points(backlog.webhooks_failed),
            backlog.webhooks_failed > 0,
            webhooks,
        ),
        HealthItem(
            "risk-open",
            _("risk cases open"),
            points(backlog.risk_open),
            backlog.risk_open > 0,
            _link("risk.index"),
        ),
        HealthItem(
            "stripe-parked",
            _("Stripe events parked"),
            points(backlog.stripe_parked),
            backlog.stripe_parked > 0,
            _link("events.index", status="parked"),
        ),
    ]
    return [job_item(lag) for lag in snapshot.jobs], waiting


class DashboardView(ConsoleIndexView):
    """The console's home page (every role)."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        figures = dashboard(self.console.db, program, days=90)
        labels = [d.day[5:] for d in figures.days]
        running, cumulative = 0, []
        for d in figures.days:
            running += d.issued - d.redeemed - d.expired - d.cleared
            cumulative.append(running)
        net = line_chart(
            _("Net points issued over the 90 days (issued minus redeemed, expired and cleared)"),
            labels,
            [Series(_("net issued"), cumulative, "#6f42c1")],
        )
        expiring = figures.expiring[EXPIRY_WINDOW]
        tiers = tier_counts(self.console.db, program)
        jobs, waiting = health_items(take_snapshot(self.console.db), program.code)
        return self.render(
            "jifen/dashboard.html",
            program=program,
            figures=figures,
            flows_chart=_flows_chart(figures, labels),
            net_chart=net,
            expiring_window=EXPIRY_WINDOW,
            expiring_share=share_text(expiring, figures.outstanding),
            tier_chart=tier_chart(tiers),
            tier_counts=tiers,
            health_jobs=jobs,
            health_waiting=waiting,
        )
