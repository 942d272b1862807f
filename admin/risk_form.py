"""The risk rules editor's form: one table per rule kind, a rule set to form fields and back.

Each kind posts repeated rows named ``<kind>.<field>`` (``velocity.id``, ``velocity.limit``,
``farming.refunded_percent``…); a row with no id and no number is left out, so clearing a
rule's id and numbers removes it. Numbers may carry thousands separators (``200,000``); a
blank number takes the kind's default where it has one. The result is a plain
``{"rules": [...]}`` that :meth:`RiskRules.from_dict` judges, so the domain stays the one
judge of a valid rule; its refusal is reworded to name the table and row it is about
(:class:`InvalidRule` with ``kind``, ``row`` and ``field`` in its details).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from loyalty.domain.risk import RiskRules, parse_rule
from loyalty.errors import InvalidRule

EXTRA_ROWS = 1
MAX_ROWS = 20
# The typical rule set a program starts from: what the editor shows before any is published.
EXAMPLE_RULES: dict[str, Any] = {
    "rules": [
        {"id": "earn-burst", "kind": "velocity", "scope": "member", "measure": "earns",
         "limit": 20, "window": "hour", "action": "block"},
        {"id": "till-burst", "kind": "velocity", "scope": "location", "measure": "points",
         "limit": 200_000, "window": "day", "action": "flag"},
        {"id": "refund-farming", "kind": "farming", "refunded_percent": 50, "days": 30,
         "min_points": 500, "action": "hold"},
        {"id": "gift-ring", "kind": "transfer_ring", "senders": 5, "hours": 24,
         "action": "flag"},
        {"id": "new-member-inflow", "kind": "new_member_inflow", "points": 50_000, "days": 7,
         "action": "block"},
        {"id": "issuance-spike", "kind": "issuance_spike", "window": "hour", "threshold": 6,
         "trailing_days": 28, "min_points": 10_000, "action": "flag"},
    ]
}  # fmt: skip
ACTION_WORDS = {
    "flag": "flag: open a case",
    "hold": "hold: open a case, keep new points pending",
    "block": "block: refuse the write",
}
WINDOW_CHOICES = (("hour", "an hour"), ("day", "a day"))


@dataclass(frozen=True)
class Field:
    """One setting of a rule kind as the editor shows it: a number, or a choice."""

    name: str
    label: str
    choices: tuple[tuple[str, str], ...] = ()

    @property
    def is_number(self) -> bool:
        return not self.choices


@dataclass(frozen=True)
class KindForm:
    """A rule kind's table in the editor: its title, what it watches, settings and actions."""

    kind: str
    title: str
    watches: str
    fields: tuple[Field, ...]
    actions: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return ("id", "action", *(f.name for f in self.fields))


KIND_FORMS: tuple[KindForm, ...] = (
    KindForm(
        "velocity",
        "Velocity",
        "More earns, or points earned, per member, location or device within an hour or a day "
        "than the limit. Blocking refuses the earn itself.",
        (
            Field("scope", "per", (("member", "member"), ("location", "location"),
                                   ("device", "device"))),
            Field("measure", "counting", (("earns", "earns"), ("points", "points earned"))),
            Field("limit", "more than"),
            Field("window", "within", WINDOW_CHOICES),
        ),
        ("flag", "hold", "block"),
    ),
    KindForm(
        "farming",
        "Buy-and-refund farming",
        "A member who had more than a share of the points they earned refunded.",
        (
            Field("refunded_percent", "refunded over %"),
            Field("days", "in the last days"),
            Field("min_points", "once earned at least"),
        ),
        ("flag", "hold"),
    ),
    KindForm(
        "transfer_ring",
        "Transfer rings",
        "Many members sending points to one member.",
        (Field("senders", "senders, at least"), Field("hours", "within hours")),
        ("flag", "hold"),
    ),
    KindForm(
        "new_member_inflow",
        "New member inflow",
        "A newly enrolled member receiving many points (earned and transferred in). Blocking "
        "refuses the earn or transfer that goes over.",
        (Field("points", "more than points"), Field("days", "enrolled less than days")),
        ("flag", "hold", "block"),
    ),
    KindForm(
        "issuance_spike",
        "Issuance spike",
        "The whole program issuing far more in an hour or a day than it usually does (median "
        "absolute deviations above the median of the same windows). It only flags.",
        (
            Field("window", "in", WINDOW_CHOICES),
            Field("threshold", "deviations above"),
            Field("trailing_days", "compared over days"),
            Field("min_points", "and at least points"),
        ),
        ("flag",),
    ),
)  # fmt: skip
KIND_FORM = {k.kind: k for k in KIND_FORMS}


def form_values(rules: Mapping[str, Any] | None) -> dict[str, list[dict[str, str]]]:
    """A rule set (or the example set) as the editor's rows, per kind, each with a blank row."""
    parsed = RiskRules.from_dict(rules if rules is not None else EXAMPLE_RULES)
    rows: dict[str, list[dict[str, str]]] = {k.kind: [] for k in KIND_FORMS}
    for rule in parsed.rules:
        data = rule.to_dict()
        rows[rule.kind].append(
            {name: _shown(data.get(name)) for name in KIND_FORM[rule.kind].names}
        )
    return {kind: _padded(KIND_FORM[kind], found) for kind, found in rows.items()}


def _shown(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else str(value)


def raw_values(form: MultiDict[str, str]) -> dict[str, list[dict[str, str]]]:
    """The submitted rows as typed, per kind, to show the form again (with its problem)."""
    return {k.kind: _padded(k, _typed_rows(k, form)) for k in KIND_FORMS}


def _typed_rows(spec: KindForm, form: MultiDict[str, str]) -> list[dict[str, str]]:
    columns = {name: form.getlist(f"{spec.kind}.{name}")[:MAX_ROWS] for name in spec.names}
    count = max((len(c) for c in columns.values()), default=0)
    rows = [
        {name: (column[i].strip() if i < len(column) else "") for name, column in columns.items()}
        for i in range(count)
    ]
    return [r for r in rows if not _blank(spec, r)]


def _blank(spec: KindForm, row: Mapping[str, str]) -> bool:
    return not row.get("id") and not any(row.get(f.name) for f in spec.fields if f.is_number)


def _padded(spec: KindForm, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    blank = {"id": "", "action": spec.actions[0]}
    blank.update({f.name: (f.choices[0][0] if f.choices else "") for f in spec.fields})
    return rows + [dict(blank) for _ in range(EXTRA_ROWS)]


def rules_from_form(form: MultiDict[str, str]) -> dict[str, Any]:
    """The draft ``{"rules": [...]}`` from the form, kinds in the editor's order.

    :class:`InvalidRule` names the table, the row and the field (``kind``, ``row``,
    ``field`` in its details) of the first rule that does not read.
    """
    items: list[dict[str, Any]] = []
    for spec in KIND_FORMS:
        for number, row in enumerate(_typed_rows(spec, form), start=1):
            item = _rule(spec, number, row)
            _check(spec, number, item, len(items))
            items.append(item)
    draft = {"rules": items}
    RiskRules.from_dict(draft)  # what one rule cannot say: ids used twice, too many rules
    return draft


def _where(spec: KindForm, number: int, rule_id: str) -> str:
    named = f" {rule_id!r}" if rule_id else ""
    return f"{spec.title}, row {number}{named}"


def _rule(spec: KindForm, number: int, row: Mapping[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {"id": row.get("id", ""), "kind": spec.kind}
    item["action"] = row.get("action") or spec.actions[0]
    for f in spec.fields:
        raw = row.get(f.name, "")
        if not raw:
            continue
        item[f.name] = raw if f.choices else _whole(spec, number, row, f, raw)
    return item


def _whole(spec: KindForm, number: int, row: Mapping[str, str], f: Field, raw: str) -> int:
    digits = raw.replace(",", "").replace(" ", "").replace("_", "")
    if not digits.isdigit() or len(digits) > 18:
        raise InvalidRule(
            f"{_where(spec, number, row.get('id', ''))}: '{f.label}' must be a whole number, "
            f"got {raw!r:.40}",
            kind=spec.kind,
            row=number,
            field=f.name,
        )
    return int(digits)


def _check(spec: KindForm, number: int, item: Mapping[str, Any], index: int) -> None:
    """The domain's judgement of one rule, its message naming the editor's table and row."""
    try:
        parse_rule(item, index)
    except InvalidRule as exc:
        said = exc.message.removeprefix(f"risk rule {index + 1}").lstrip(": ")
        raise InvalidRule(
            f"{_where(spec, number, str(item.get('id') or ''))}: {said}",
            kind=spec.kind,
            row=number,
            field=str(exc.details.get("field") or ""),
        ) from None


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What a draft changes from the rules in force, a line per rule added, removed or changed."""
    old = {r.id: r for r in RiskRules.from_dict(before or {"rules": []}).rules}
    new = {r.id: r for r in RiskRules.from_dict(after).rules}
    lines = [
        f"adds {rid} ({rule.kind}, {rule.action})" for rid, rule in new.items() if rid not in old
    ]
    lines += [f"removes {rid}" for rid in old if rid not in new]
    for rid, rule in new.items():
        was = old.get(rid)
        if was is None or was.to_dict() == rule.to_dict():
            continue
        before_d, after_d = was.to_dict(), rule.to_dict()
        moved = [
            f"{name} {_shown(before_d.get(name)) or '—'} → {_shown(after_d.get(name)) or '—'}"
            for name in sorted(set(before_d) | set(after_d))
            if before_d.get(name) != after_d.get(name)
        ]
        lines.append(f"changes {rid}: {', '.join(moved)}")
    return lines
