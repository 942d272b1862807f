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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from admin.code_words import code_word
from admin.i18n import CHINESE, current_locale
from admin.risk_words import action_word
from loyalty.domain.risk import TYPICAL_RULES, RiskRule, RiskRules, parse_rule
from loyalty.errors import InvalidRule

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

EXTRA_ROWS = 1
MAX_ROWS = 20
# The typical rule set a program starts from: what the editor shows before any is published.
EXAMPLE_RULES: dict[str, Any] = TYPICAL_RULES
ACTION_WORDS: dict[str, object] = {
    "flag": _l("flag: open a case"),
    "hold": _l("hold: open a case, keep new points pending"),
    "block": _l("block: refuse the write"),
}
WINDOW_CHOICES = (("hour", _l("an hour")), ("day", _l("a day")))


@dataclass(frozen=True)
class Field:
    """One setting of a rule kind as the editor shows it: a number, or a choice."""

    name: str
    label: object
    choices: tuple[tuple[str, object], ...] = ()

    @property
    def is_number(self) -> bool:
        return not self.choices


@dataclass(frozen=True)
class KindForm:
    """A rule kind's table in the editor: its title, what it watches, settings and actions."""

    kind: str
    title: object
    watches: object
    fields: tuple[Field, ...]
    actions: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return ("id", "action", *(f.name for f in self.fields))


KIND_FORMS: tuple[KindForm, ...] = (
    KindForm(
        "velocity",
        _l("Velocity"),
        _l("More earns, or points earned, per member, location or device within an hour or a "
           "day than the limit. Blocking refuses the earn itself."),
        (
            Field("scope", _l("per"), (("member", _l("member")), ("location", _l("location")),
                                       ("device", _l("device")))),
            Field("measure", _l("counting"), (("earns", _l("earns")),
                                              ("points", _l("points earned")))),
            Field("limit", _l("more than")),
            Field("window", _l("within"), WINDOW_CHOICES),
        ),
        ("flag", "hold", "block"),
    ),
    KindForm(
        "farming",
        _l("Buy-and-refund farming"),
        _l("A member who had more than a share of the points they earned refunded."),
        (
            Field("refunded_percent", _l("refunded over %")),
            Field("days", _l("in the last days")),
            Field("min_points", _l("once earned at least")),
        ),
        ("flag", "hold"),
    ),
    KindForm(
        "transfer_ring",
        _l("Transfer rings"),
        _l("Many members sending points to one member."),
        (Field("senders", _l("senders, at least")), Field("hours", _l("within hours"))),
        ("flag", "hold"),
    ),
    KindForm(
        "transfer_chain",
        _l("Transfer chains"),
        _l("A member passing most of the points they received by transfer on to other members "
           "soon after (A → B → C: points laundered through a mule account)."),
        (
            Field("share_percent", _l("passed on, at least %")),
            Field("hours", _l("within hours")),
            Field("min_points", _l("and at least points")),
        ),
        ("flag", "hold"),
    ),
    KindForm(
        "new_member_inflow",
        _l("New member inflow"),
        _l("A newly enrolled member receiving many points (earned and transferred in). "
           "Blocking refuses the earn or transfer that goes over."),
        (Field("points", _l("more than points")), Field("days", _l("enrolled less than days"))),
        ("flag", "hold", "block"),
    ),
    KindForm(
        "issuance_spike",
        _l("Issuance spike"),
        _l("The whole program issuing far more in an hour or a day than it usually does "
           "(median absolute deviations above the median of the same windows). It only flags."),
        (
            Field("window", _l("in"), WINDOW_CHOICES),
            Field("threshold", _l("deviations above")),
            Field("trailing_days", _l("compared over days")),
            Field("min_points", _l("and at least points")),
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
    ``field`` in its details) of the first rule that does not read, in the request's language.
    """
    items: list[dict[str, Any]] = []
    for spec in KIND_FORMS:
        for number, row in enumerate(_typed_rows(spec, form), start=1):
            item = _rule(spec, number, row)
            _check(spec, number, item, len(items))
            items.append(item)
    draft = {"rules": items}
    try:  # what one rule cannot say: ids used twice, too many rules
        RiskRules.from_dict(draft)
    except InvalidRule as exc:
        raise InvalidRule(problem_words(exc.message), **exc.details) from None
    return draft


def _where(spec: KindForm, number: int, rule_id: str) -> str:
    if rule_id:
        return _("%(table)s, row %(row)s %(id)s", table=spec.title, row=number, id=repr(rule_id))
    return _("%(table)s, row %(row)s", table=spec.title, row=number)


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
        shown = f"{raw!r:.40}"
        problem = _("'%(field)s' must be a whole number, got %(value)s", field=f.label, value=shown)
        raise InvalidRule(
            _("%(what)s: %(detail)s", what=_where(spec, number, row.get("id", "")), detail=problem),
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
        where = _where(spec, number, str(item.get("id") or ""))
        raise InvalidRule(
            _("%(what)s: %(detail)s", what=where, detail=problem_words(said, spec.kind)),
            kind=spec.kind,
            row=number,
            field=str(exc.details.get("field") or ""),
        ) from None


# --- the domain's refusals and a draft's changes, in the request's language -----------------

# The settings every rule has, named by their JSON name in English (:mod:`admin.code_words`);
# in Chinese the others are named by their column in the editor (:func:`param_word`).
PARAM_MEANINGS: dict[str, LazyString] = {
    "id": _l("rule id"),
    "kind": _l("rule kind"),
    "action": _l("rule action"),
}


def N_(message: str) -> str:
    """``message`` as it is, marked for the catalogue: it is translated where it is shown."""
    return message


# The refusals of :func:`loyalty.domain.risk.parse_rule` a person can meet in the editor: those
# said in so many words, then those with a setting or figures (in English, the domain's words).
_SAID: frozenset[str] = frozenset(
    {
        N_(
            "'id' must be 1 to 64 lower-case letters, digits, '-' or '_', starting with a letter "
            "or digit"
        ),
        N_(
            "only velocity and new_member_inflow rules can block (they are checked in the write "
            "itself); use 'flag' or 'hold'"
        ),
        N_("an issuance spike concerns the whole program; it only flags"),
        N_(
            "'hold' keeps a member's points pending, so it needs scope 'member'; a location or "
            "device rule can flag or block"
        ),
    }
)
_FIELD = r"'(?P<field>[a-z_]+)'"
_FIGURE = r"-?[0-9][0-9,]*"
_WITH_VALUES: tuple[tuple[re.Pattern[str], object], ...] = (
    (
        re.compile(rf"{_FIELD} must be a whole number from (?P<low>{_FIGURE}) to "
                   rf"(?P<high>{_FIGURE})"),
        _l("'%(field)s' must be a whole number from %(low)s to %(high)s"),
    ),
    (re.compile(rf"(?P<kind>[a-z_]+) needs {_FIELD}"), _l("%(kind)s needs '%(field)s'")),
    (
        re.compile(rf"{_FIELD} must be one of (?P<choices>[a-z_, ]+)"),
        _l("'%(field)s' must be one of %(choices)s"),
    ),
    (
        re.compile(r"two risk rules have the id (?P<id>'.*')"),
        _l("two risk rules have the id %(id)s"),
    ),
    (re.compile(rf"at most (?P<count>{_FIGURE}) risk rules"), _l("at most %(count)s risk rules")),
)  # fmt: skip


def problem_words(message: str, kind: str = "") -> str:
    """A refusal of the domain's in the request's language (a setting named by what the
    editor calls it in Chinese); a message it does not know, as it is."""
    if message in _SAID:
        return _(message)
    for pattern, words in _WITH_VALUES:
        found = pattern.fullmatch(message)
        if found is None:
            continue
        values = found.groupdict()
        if "field" in values:
            values["field"] = param_word(values["field"], kind)
        if "kind" in values:
            values["kind"] = _kind_word(values["kind"])
        return str(words) % values
    return message


def param_word(name: str, kind: str = "") -> str:
    """A rule setting: its JSON name in English, in Chinese the editor's column for it."""
    if name in PARAM_MEANINGS:
        return code_word(PARAM_MEANINGS, name)
    if current_locale() == CHINESE:
        spec = KIND_FORM.get(kind)
        label = next((f.label for f in spec.fields if f.name == name), None) if spec else None
        if label is not None:
            return str(label)
    return name


def kind_title(kind: str) -> str:
    """A rule kind as the editor names its table (``transfer ring`` for one it does not know)."""
    spec = KIND_FORM.get(kind)
    return kind.replace("_", " ") if spec is None else str(spec.title)


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What a draft changes from the rules in force, a line per rule added, removed or changed."""
    old = {r.id: r for r in RiskRules.from_dict(before or {"rules": []}).rules}
    new = {r.id: r for r in RiskRules.from_dict(after).rules}
    lines = [
        _("adds %(id)s (%(kind)s, %(action)s)", id=rid, kind=_kind_word(rule.kind),
          action=_value_word(rule.kind, "action", rule.action))
        for rid, rule in new.items()
        if rid not in old
    ]  # fmt: skip
    lines += [_("removes %(id)s", id=rid) for rid in old if rid not in new]
    for rid, rule in new.items():
        was = old.get(rid)
        if was is None or was.to_dict() == rule.to_dict():
            continue
        lines.append(_("changes %(id)s: %(moves)s", id=rid, moves=_(", ").join(_moves(was, rule))))
    return lines


def _moves(was: RiskRule, rule: RiskRule) -> list[str]:
    before, after = was.to_dict(), rule.to_dict()
    return [
        _(
            "%(setting)s %(before)s → %(after)s",
            setting=param_word(name, rule.kind),
            before=_value_word(rule.kind, name, before.get(name)) or "—",
            after=_value_word(rule.kind, name, after.get(name)) or "—",
        )
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]


def _kind_word(kind: str) -> str:
    """A rule kind in a change: its code in English (``transfer_ring``), its table in Chinese."""
    return kind_title(kind) if current_locale() == CHINESE else kind


def _value_word(kind: str, name: str, value: Any) -> str:
    """A setting's value in a change: numbers with separators; in Chinese, a choice's words."""
    if current_locale() != CHINESE or not isinstance(value, str):
        return _shown(value)
    if name == "action":
        return action_word(value)
    spec = KIND_FORM.get(kind)
    for f in spec.fields if spec else ():
        if f.name == name:
            return str(dict(f.choices).get(value, value))
    return value
