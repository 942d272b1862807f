"""The dashboard: points issued, redeemed, expired and cleared per day, the liability, what
expires soon, members and the top earners."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from admin.charts import Series, bar_chart, line_chart
from admin.views.base import ConsoleIndexView, expose
from loyalty.services.console_queries import dashboard


class DashboardView(ConsoleIndexView):
    """The console's home page (every role)."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        figures = dashboard(self.console.db, program, days=90)
        labels = [d.day[5:] for d in figures.days]
        flows = bar_chart(
            "Points per day, last 90 days",
            labels,
            [
                Series("issued", [d.issued for d in figures.days], "#2c7be5"),
                Series("redeemed", [d.redeemed for d in figures.days], "#18bc9c"),
                Series("expired", [d.expired for d in figures.days], "#e5a52c"),
                Series("cleared", [d.cleared for d in figures.days], "#d9534f"),
            ],
            stacked=True,
        )
        running, cumulative = 0, []
        for d in figures.days:
            running += d.issued - d.redeemed - d.expired - d.cleared
            cumulative.append(running)
        net = line_chart(
            "Net points issued over the 90 days (issued minus redeemed, expired and cleared)",
            labels,
            [Series("net issued", cumulative, "#6f42c1")],
        )
        return self.render(
            "jifen/dashboard.html",
            program=program,
            figures=figures,
            flows_chart=flows,
            net_chart=net,
        )
