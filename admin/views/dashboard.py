"""The dashboard: points issued (above the line) and redeemed, expired and cleared (below it)
per day, the net over the period, the liability, what expires within 90 days and its share of
what members hold, members and the top earners."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from markupsafe import Markup

from admin.charts import Series, flow_chart, line_chart
from admin.views.base import ConsoleIndexView, expose
from loyalty.services.console_queries import Dashboard, dashboard

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
        return self.render(
            "jifen/dashboard.html",
            program=program,
            figures=figures,
            flows_chart=_flows_chart(figures, labels),
            net_chart=net,
            expiring_window=EXPIRY_WINDOW,
            expiring_share=share_text(expiring, figures.outstanding),
        )
