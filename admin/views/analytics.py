"""Analytics (积分分析): the figures a marketing team acts on, for a range of the program's
local dates compared with the period of the same length just before it (every role).

The page reads :mod:`loyalty.services.analytics` and shows, each beside its previous value and
its change (in percent; a rate's in percentage points):

* the summary: points issued, redeemed, expired, cleared, reversed and adjusted, breakage and
  redemption rate, points outstanding and their money value, members active and new,
  transfers;
* each flow on its own small chart per day (per week past 92 days, and the heading says so),
  on its own scale; an outlier day is cut at the axis and labelled with its value (see
  :func:`admin.charts.small_bar_chart`). The issued chart marks the day each rule version took
  effect and shades the days a campaign ran;
* points outstanding (liability) and the breakage and redemption rates from the start of the
  range, new members per day, points outstanding by age and by the month of their last
  usable day;
* points issued by action, rule version and location, the top members with their share, and
  the transfer volume.

Every chart has its numbers in a ``<details>`` table under it, and every table downloads as
CSV (UTF-8 with a BOM, times in the program's zone with their offset; the download is
audited). A bad ``from``, ``to`` or ``range`` is refused in the page (400) beside the form,
which keeps what was typed, with the default range's figures below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from flask import Response, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from markupsafe import Markup

from admin.auth import actor
from admin.charts import (
    ChartBand,
    ChartMarker,
    LineSeries,
    small_bar_chart,
    small_line_chart,
)
from admin.formatting import money
from admin.views.base import ConsoleView, expose
from admin.views.export import stream_csv
from loyalty.domain.calendar import zone
from loyalty.domain.money import minor_unit_exponent
from loyalty.errors import InvalidInput
from loyalty.services import audit
from loyalty.services.analytics import (
    AGE_BANDS,
    DEFAULT_PRESET,
    FLOWS,
    NO_CAMPAIGN,
    NO_CATEGORY,
    PRESETS,
    TABLES,
    Breakdowns,
    Bucket,
    Compared,
    ComparedRate,
    DateRange,
    Flows,
    PartRow,
    Report,
    parse_range,
    preset_range,
    report,
    table,
    today_of,
)
from loyalty.services.results import ProgramInfo


def _(text: str, **values: Any) -> str:
    """``text`` in the request's language (flask-babel's ``gettext``), typed."""
    return str(gettext(text, **values))


COLORS = {
    "issued": "#2c7be5",
    "redeemed": "#18bc9c",
    "expired": "#e5a52c",
    "cleared": "#d9534f",
    "reversed": "#6f42c1",
    "adjusted": "#5f666d",
    "new_members": "#17a2b8",
    "outstanding": "#6f42c1",
    "age": "#6f42c1",
    "expiry": "#e5a52c",
    "categories": "#2c7be5",
    "campaigns": "#d9534f",
}
UP, DOWN = "\u25b2", "\u25bc"
MINUS = "\u2212"


def flow_words() -> dict[str, tuple[str, str]]:
    """Each flow's name and what it counts, in the request's language."""
    return {
        "issued": (_("Issued"), _("earned by purchases and actions")),
        "redeemed": (
            _("Redeemed"),
            _("spent at checkout and on rewards, less returns"),
        ),
        "expired": (_("Expired"), _("lapsed at the end of their validity")),
        "cleared": (_("Cleared"), _("taken by the year-end clearing")),
        "reversed": (
            _("Reversed"),
            _("taken back by refunds and lost disputes"),
        ),
        "adjusted": (_("Adjusted"), _("granted less deducted by staff")),
    }


# --- numbers in words ------------------------------------------------------------------------


def signed_points(value: int) -> str:
    """``+1,234`` / ``−56`` / ``0``."""
    if value < 0:
        return f"{MINUS}{-value:,}"
    return f"+{value:,}" if value else "0"


def percent_text(value: Fraction | None) -> str:
    """``12.3 %``; a dash without a value."""
    return "—" if value is None else f"{float(value):.1f} %"


@dataclass(frozen=True)
class ChangeText:
    """A change as the page shows it: its words and which way it went (``up``, ``down``,
    ``flat``, ``new`` or ``none``)."""

    text: str
    direction: str


def change_of(c: Compared) -> ChangeText:
    """The change of a figure from the previous period, in percent with its arrow."""
    if c.change is None:
        return ChangeText(_("new"), "new") if c.value else ChangeText("—", "none")
    return _arrow(c.change, "%")


def rate_change_of(c: ComparedRate) -> ChangeText:
    """The change of a rate, in percentage points with its arrow."""
    if c.change is None:
        return ChangeText("—", "none")
    return _arrow(c.change, _("pp"))


def _arrow(change: Fraction, unit: str) -> ChangeText:
    rounded = round(float(change), 1)
    if rounded == 0:
        return ChangeText(f"\u00b10.0 {unit}", "flat")
    if rounded > 0:
        return ChangeText(f"{UP} +{rounded:.1f} {unit}", "up")
    return ChangeText(f"{DOWN} {MINUS}{-rounded:.1f} {unit}", "down")


# --- the range -------------------------------------------------------------------------------


def read_range(program: ProgramInfo, today: dt.date) -> DateRange:
    """The range ``?from=&to=`` or ``?range=`` asks for (the default preset without them);
    :class:`InvalidInput` for a bad one."""
    return parse_range(
        request.args.get("from"),
        request.args.get("to"),
        preset=request.args.get("range") or None,
        today=today,
        tz=program.timezone,
    )


def range_args(rng: DateRange) -> dict[str, str]:
    """The query arguments of ``rng``."""
    return {"from": rng.first.isoformat(), "to": rng.last.isoformat()}


@dataclass(frozen=True)
class PresetLink:
    key: str
    label: str
    url: str
    active: bool


def preset_links(current: DateRange | None, today: dt.date, tz: str) -> list[PresetLink]:
    """A link per preset, the one equal to ``current`` marked active."""
    labels = {
        "7d": _("Last 7 days"),
        "30d": _("Last 30 days"),
        "90d": _("Last 90 days"),
        "this-month": _("This month"),
        "last-month": _("Last month"),
    }
    links = []
    for key in PRESETS:
        rng = preset_range(key, today, tz)
        links.append(PresetLink(key, labels[key], url_for(".index", range=key), rng == current))
    return links


# --- charts ----------------------------------------------------------------------------------


def bucket_label(first: dt.date, long_dates: bool) -> str:
    """A day's (or week's first day's) label under a chart: ``11-15``, or ``2025-11-15``
    when the range spans years."""
    return first.isoformat() if long_dates else first.strftime("%m-%d")


def bucket_span(b: Bucket) -> str:
    """A bucket's dates in a table: ``2026-11-15`` or ``2026-11-15 – 2026-11-21``."""
    if b.first == b.last:
        return b.first.isoformat()
    return f"{b.first.isoformat()} – {b.last.isoformat()}"


def _labels(flows: Flows) -> list[str]:
    rng = flows.current.range
    long_dates = rng.first.year != rng.last.year
    return [bucket_label(b.first, long_dates) for b in flows.current.buckets]


def _index_of(flows: Flows, day: dt.date) -> int | None:
    for i, b in enumerate(flows.current.buckets):
        if b.first <= day <= b.last:
            return i
    return None


def rule_markers(flows: Flows, parts: Breakdowns) -> list[ChartMarker]:
    """A marker on the issued chart for each rule version that took effect in the range."""
    tz = zone(flows.current.range.tz)
    markers = []
    for m in parts.markers:
        index = _index_of(flows, m.day)
        if index is not None:
            at = m.effective_from.astimezone(tz).strftime("%Y-%m-%d %H:%M %z")
            title = _("rule version %(version)s in force from %(at)s", version=m.version, at=at)
            markers.append(ChartMarker(index, f"v{m.version}", title))
    return markers


def campaign_bands(flows: Flows, parts: Breakdowns) -> list[ChartBand]:
    """A shaded band on the issued chart over the days each campaign ran in the range."""
    rng = flows.current.range
    tz = zone(rng.tz)
    bands = []
    for c in parts.campaigns:
        first = max(c.starts_at.astimezone(tz).date(), rng.first)
        last = min((c.ends_at - dt.timedelta(microseconds=1)).astimezone(tz).date(), rng.last)
        start, end = _index_of(flows, first), _index_of(flows, last)
        if start is not None and end is not None:
            label = _("campaign %(name)s ×%(multiplier)s", name=c.name, multiplier=c.multiplier)
            bands.append(ChartBand(start, end, label))
    return bands


def per_what(flows: Flows) -> str:
    """``per day`` or ``per week``, as the charts' headings say."""
    return _("per day") if flows.granularity == "day" else _("per week")


@dataclass(frozen=True)
class ChartCard:
    """A small chart, its total compared with the previous period, and its numbers bucket by
    bucket beside the previous period's bucket at the same place."""

    key: str
    title: str
    note: str
    chart: Markup
    total: Compared
    rows: tuple[tuple[str, str, str, str], ...]
    total_label: str = ""
    detail: str = ""


def _rows(flows: Flows, cell: Callable[[Bucket], str]) -> tuple[tuple[str, str, str, str], ...]:
    """Each bucket's dates and ``cell``, beside the previous period's bucket at its place."""
    return tuple(
        (bucket_span(now), cell(now), bucket_span(before), cell(before))
        for now, before in zip(flows.current.buckets, flows.previous.buckets, strict=True)
    )


def _flow_cell(name: str) -> Callable[[Bucket], str]:
    if name == "adjusted":
        return lambda b: signed_points(b.flows.adjusted)
    return lambda b: f"{getattr(b.flows, name):,}"


def flow_cards(r: Report) -> list[ChartCard]:
    """One small chart per flow; the issued one with the rule versions and campaigns."""
    flows, labels, words = r.flows, _labels(r.flows), flow_words()
    cards = []
    for name in FLOWS:
        title, note = words[name]
        chart = small_bar_chart(
            f"{title}, {per_what(flows)}",
            labels,
            [getattr(b.flows, name) for b in flows.current.buckets],
            color=COLORS[name],
            markers=rule_markers(flows, r.breakdowns) if name == "issued" else (),
            bands=campaign_bands(flows, r.breakdowns) if name == "issued" else (),
            empty=_("none in this period"),
        )
        cards.append(
            ChartCard(
                name,
                title,
                note,
                chart,
                flows.compared(name),
                _rows(flows, _flow_cell(name)),
                _("In all"),
            )
        )
    return cards


def _period_end_words(flows: Flows) -> str:
    if flows.granularity == "day":
        return _("at the end of each day")
    return _("at the end of each week")


def outstanding_card(r: Report) -> ChartCard:
    """Points outstanding at the end of each day (or week), with their money value."""
    flows, currency = r.flows, r.program.currency
    title = _("Points outstanding (liability)")
    chart = small_line_chart(
        f"{title}, {_period_end_words(flows)}",
        _labels(flows),
        [
            LineSeries(
                _("outstanding"),
                [b.outstanding for b in flows.current.buckets],
                COLORS["outstanding"],
            )
        ],
    )
    value = money(10 ** minor_unit_exponent(currency), currency)
    points = f"{r.program.points_per_unit:,}"
    return ChartCard(
        "outstanding",
        title,
        _(
            "all points members hold, %(when)s; %(points)s points = %(value)s",
            when=_period_end_words(flows),
            points=points,
            value=value,
        ),
        chart,
        flows.compared("closing"),
        _rows(flows, lambda b: f"{b.outstanding:,} · {money(b.liability_minor, currency)}"),
        _("At the end"),
        money(flows.current.liability_minor, currency),
    )


def rates_chart(r: Report) -> Markup:
    """Breakage and redemption rate from the start of the range to the end of each day."""
    buckets = r.flows.current.buckets
    return small_line_chart(
        _("Breakage and redemption rate, from the start of the range"),
        _labels(r.flows),
        [
            LineSeries(
                _("breakage"),
                [_float(b.to_date.breakage.percent) for b in buckets],
                COLORS["cleared"],
            ),
            LineSeries(
                _("redemption"),
                [_float(b.to_date.redemption.percent) for b in buckets],
                COLORS["redeemed"],
            ),
        ],
        percent=True,
    )


def rate_rows(r: Report) -> tuple[tuple[str, str, str, str, str], ...]:
    """Per bucket: its dates, breakage and redemption from the start of the range, and the
    same for the previous period's bucket at the same place."""
    pairs = zip(r.flows.current.buckets, r.flows.previous.buckets, strict=True)
    return tuple(
        (
            bucket_span(now),
            percent_text(now.to_date.breakage.percent),
            percent_text(now.to_date.redemption.percent),
            percent_text(before.to_date.breakage.percent),
            percent_text(before.to_date.redemption.percent),
        )
        for now, before in pairs
    )


def _float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def new_members_card(r: Report) -> ChartCard:
    flows = r.flows
    title = _("New members")
    return ChartCard(
        "new_members",
        title,
        _("members who joined"),
        small_bar_chart(
            f"{title}, {per_what(flows)}",
            _labels(flows),
            [b.new_members for b in flows.current.buckets],
            color=COLORS["new_members"],
            empty=_("none in this period"),
        ),
        flows.compared("new_members"),
        _rows(flows, lambda b: f"{b.new_members:,}"),
        _("In all"),
    )


def holdings_charts(r: Report) -> tuple[Markup, Markup]:
    """Points outstanding at the end of the range by age and by expiry month."""
    ages = list(zip(age_bands(), (c for _key, c in r.holdings.age_rows()), strict=True))
    months = [(month_word(k), c) for k, c in r.holdings.month_rows()]
    by_age = small_bar_chart(
        _("Points outstanding by age in days, at the end of the range"),
        [label for label, _c in ages],
        [c.value for _l, c in ages],
        color=COLORS["age"],
        max_labels=len(ages),
    )
    by_month = small_bar_chart(
        _("Points outstanding by the month of their last usable day"),
        [label for label, _c in months],
        [c.value for _l, c in months],
        color=COLORS["expiry"],
    )
    return by_age, by_month


def part_word(key: str) -> str:
    """A category's or campaign's label: its name, or the words for purchases without one."""
    words = {NO_CATEGORY: _("no category"), NO_CAMPAIGN: _("no campaign")}
    return words.get(key, key)


def parts_charts(r: Report) -> tuple[Markup, Markup]:
    """Purchases' points in the range by category and by campaign."""

    def chart(title: str, rows: tuple[PartRow, ...], color: str) -> Markup:
        return small_bar_chart(
            title,
            [part_word(row.key) for row in rows],
            [row.points.value for row in rows],
            color=color,
            max_labels=len(rows),
            empty=_("No purchases in the range."),
        )

    parts = r.breakdowns
    return (
        chart(_("Purchases' points by category"), parts.categories, COLORS["categories"]),
        chart(_("Purchases' points by campaign"), parts.campaign_points, COLORS["campaigns"]),
    )


def month_word(key: str) -> str:
    """An expiry month's label: ``2027-05``, or the words for the three special rows."""
    words = {"overdue": _("overdue"), "later": _("later"), "never": _("never")}
    return words.get(key, key)


def age_bands() -> list[str]:
    """The age bands as a chart's labels: ``0–30`` ... ``>365`` (days)."""
    return [f">{low - 1}" if high is None else f"{low}–{high}" for low, high in AGE_BANDS]


def age_words() -> list[str]:
    """The age bands' labels: ``0–30 days`` ... ``over 365 days``."""
    return [
        _("over %(days)s days", days=low - 1)
        if high is None
        else _("%(low)s–%(high)s days", low=low, high=high)
        for low, high in AGE_BANDS
    ]


# --- the page --------------------------------------------------------------------------------


def csv_links(rng: DateRange) -> dict[str, str]:
    """Each table's CSV download for ``rng``."""
    links = {}
    for name in TABLES:
        values: dict[str, Any] = {"table_name": name, **range_args(rng)}
        links[name] = url_for(".csv", **values)
    return links


class AnalyticsView(ConsoleView):
    """The Analytics page and its CSV downloads (every role)."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        db = self.console.db
        today = today_of(db, program.timezone)
        refused: InvalidInput | None = None
        try:
            rng = read_range(program, today)
        except InvalidInput as exc:
            refused = exc
            rng = preset_range(DEFAULT_PRESET, today, program.timezone)
        r = report(db, program, rng)
        by_age, by_month = holdings_charts(r)
        by_category, by_campaign = parts_charts(r)
        field = refused.details.get("field") if refused else None
        html = self.render(
            "jifen/analytics.html",
            program=program,
            r=r,
            rng=rng,
            previous=rng.previous(),
            today=today,
            per=per_what(r.flows),
            presets=preset_links(None if refused else rng, today, program.timezone),
            refused=refused.message if refused else "",
            refused_field=field,
            from_text=request.args.get("from", "") if refused else rng.first.isoformat(),
            to_text=request.args.get("to", "") if refused else rng.last.isoformat(),
            cards=flow_cards(r),
            outstanding=outstanding_card(r),
            rates_chart=rates_chart(r),
            rate_rows=rate_rows(r),
            new_members=new_members_card(r),
            age_chart=by_age,
            month_chart=by_month,
            category_chart=by_category,
            campaign_chart=by_campaign,
            part_word=part_word,
            month_word=month_word,
            age_words=age_words(),
            change=change_of,
            rate_change=rate_change_of,
            pct=percent_text,
            signed=signed_points,
            words=flow_words(),
            csv=csv_links(rng),
            exponent=minor_unit_exponent(program.currency),
        )
        return html, 400 if refused else 200

    @expose("/<table_name>.csv")
    def csv(self, table_name: str) -> ResponseReturnValue:
        name = table_name
        if name not in TABLES:
            raise InvalidInput(
                f"no analytics table {name!r:.40}; the tables are {', '.join(TABLES)}",
                field="table",
            )
        program = self.program()
        db = self.console.db
        rng = read_range(program, today_of(db, program.timezone))
        rows = table(report(db, program, rng), name)
        audit(
            db,
            actor=actor(),
            action="analytics.csv",
            target=f"{name}.csv",
            program=program.code,
            after={"table": name, **range_args(rng)},
        )
        filename = f"jifen-{program.code}-{name}-{rng.first}-{rng.last}.csv"
        return Response(
            stream_with_context(stream_csv(rows.header, iter([rows.rows]))),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )
