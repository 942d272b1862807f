"""The dashboard: points issued (above the line) and redeemed, expired and cleared (below it)
per day, the net over the period, the liability, what expires within 90 days and its share of
what members hold, members and the top earners; with tiers, how many members hold each."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from markupsafe import Markup

from admin.charts import Series, bar_chart, flow_chart, line_chart
from admin.views.base import ConsoleIndexView, expose
from loyalty.services import tier_distribution, tiers_in_force
from loyalty.services.console_queries import Dashboard, dashboard
from loyalty.services.results import ProgramInfo
from loyalty.services.tier_results import TierCount
from loyalty.services.uow import Target

EXPIRY_WINDOW = 90


def share_text(part: int, whole: int) -> str:
    """``part`` as a whole percentage of ``whole`` ("93 %"), "<1 %" for a sliver, "" without
    a whole; never 100 % unless it is all."""
    if whole <= 0:
        return ""
    if 0 < part * 100 < whole:
        return "<1 %"
    return f"{part * 100 // whole} %"


def _flows_chart(figures: Dashboard, labels: list[str]) -> Markup:
    return flow_chart(
        "Points per day, last 90 days: issued above the line; redeemed, expired and cleared "
        "below it",
        labels,
        [Series("issued", [d.issued for d in figures.days], "#2c7be5")],
        [
            Series("redeemed", [d.redeemed for d in figures.days], "#18bc9c"),
            Series("expired", [d.expired for d in figures.days], "#e5a52c"),
            Series("cleared", [d.cleared for d in figures.days], "#d9534f"),
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
        "Members per tier now",
        [c.name for c in counts],
        [Series("members", [c.members for c in counts], "#6f42c1")],
        max_labels=len(counts),
    )


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
            "Net points issued over the 90 days (issued minus redeemed, expired and cleared)",
            labels,
            [Series("net issued", cumulative, "#6f42c1")],
        )
        expiring = figures.expiring[EXPIRY_WINDOW]
        tiers = tier_counts(self.console.db, program)
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
        )
