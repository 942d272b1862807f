"""Risk rules (风控规则) as plain data: what each kind of rule watches, its limits, its action,
the one sentence that explains it, and the robust statistic the issuance rule uses.

A program's risk rules are a list of rules, each with an ``id`` (unique in the list), a
``kind`` and an ``action``:

* ``velocity``: more than ``limit`` earns (``measure="earns"``) or points
  (``measure="points"``) per ``scope`` (``member``, ``location`` or ``device``, the last two
  from what the shop passes with an earn) in one ``window`` (``hour`` or ``day``, sliding);
* ``farming``: a member's refunded share of the points they earned over ``days`` days is
  above ``refunded_percent`` (buy-and-refund farming), once they earned ``min_points``;
* ``transfer_ring``: ``senders`` or more different members sent points to one member within
  ``hours`` hours;
* ``transfer_chain``: a member received points by transfer and passed at least
  ``share_percent`` % of them on to other members within ``hours`` hours, at least
  ``min_points`` points in all (points laundered through a mule account: A → B → C);
* ``new_member_inflow``: a member enrolled less than ``days`` days ago received more than
  ``points`` points (earned and transferred in);
* ``issuance_spike``: the program's issuance in the last ``window`` is more than
  ``threshold`` median absolute deviations above the median of the same windows over the
  last ``trailing_days`` days, and at least ``min_points``.

Actions: ``flag`` opens a case for review; ``hold`` opens it and keeps the member's new
points pending until a person releases them; ``block`` refuses the write with
:class:`~loyalty.errors.RiskBlocked` and leaves the ledger untouched. ``block`` applies to
the rules checked inside the write's transaction (``velocity``, ``new_member_inflow``);
``issuance_spike`` concerns the whole program, so it only flags.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loyalty.errors import InvalidRule

ACTIONS = ("flag", "hold", "block")
KINDS = (
    "velocity",
    "farming",
    "transfer_ring",
    "transfer_chain",
    "new_member_inflow",
    "issuance_spike",
)
SCOPES = ("member", "location", "device")
WINDOWS = {"hour": 3600, "day": 86400}
MEASURES = ("earns", "points")
# The kinds checked inside the write's transaction, so the only ones that can block.
BLOCKING_KINDS = ("velocity", "new_member_inflow")
MAX_RULES = 50
MAX_LIMIT = 10**12
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# A typical rule set, what a program starts from: a member blocked past 20 earns an hour and
# a new member past 50,000 points in their first week (both checked in the write); a till
# past 200,000 points a day, a ring of 5 senders in a day and an hourly issuance spike
# flagged; buy-and-refund farming held.
TYPICAL_RULES: dict[str, Any] = {
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


@dataclass(frozen=True)
class RiskRule:
    """One rule: its id, kind, action and the kind's parameters (see the module docstring)."""

    id: str
    kind: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    @property
    def window_seconds(self) -> int:
        """The window of a ``velocity`` or ``issuance_spike`` rule, in seconds."""
        return WINDOWS[self.params["window"]]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "action": self.action, **self.params}

    def explain(self) -> str:
        """The rule in one English sentence."""
        p, verb = self.params, _VERBS[self.action]
        if self.kind == "velocity":
            what = "earns" if p["measure"] == "earns" else "points earned"
            per = {"member": "member", "location": "location", "device": "device"}[p["scope"]]
            return (
                f"More than {p['limit']:,} {what} per {per} within an {p['window']}".replace(
                    "an day", "a day"
                )
                + f": {verb}."
            )
        if self.kind == "farming":
            return (
                f"A member who had more than {p['refunded_percent']} % of the points they earned "
                f"in the last {p['days']} days refunded (after earning at least "
                f"{p['min_points']:,}): {verb}."
            )
        if self.kind == "transfer_ring":
            return (
                f"{p['senders']} or more members sending points to one member within "
                f"{p['hours']} hours: {verb}."
            )
        if self.kind == "transfer_chain":
            return (
                f"A member passing {p['share_percent']} % or more of the points they received "
                f"by transfer on to other members within {p['hours']} hours (at least "
                f"{p['min_points']:,} points): {verb}."
            )
        if self.kind == "new_member_inflow":
            return (
                f"A member enrolled less than {p['days']} days ago receiving more than "
                f"{p['points']:,} points: {verb}."
            )
        return (
            f"The program issuing, in one {p['window']}, more than {p['threshold']} median "
            f"absolute deviations above its median {p['window']} of the last "
            f"{p['trailing_days']} days (and at least {p['min_points']:,} points): {verb}."
        )

    def explain_zh(self) -> str:
        """The rule in one Chinese sentence."""
        p, verb = self.params, _VERBS_ZH[self.action]
        window = {"hour": "1 小时", "day": "1 天"}.get(str(p.get("window")), "")
        if self.kind == "velocity":
            per = {"member": "每位会员", "location": "每个门店", "device": "每台设备"}[p["scope"]]
            what = "笔积分获取" if p["measure"] == "earns" else "积分"
            return f"{per}在 {window}内超过 {p['limit']:,} {what}：{verb}。"
        if self.kind == "farming":
            return (
                f"会员近 {p['days']} 天获得的积分中退款比例超过 {p['refunded_percent']}%"
                f"（获得至少 {p['min_points']:,} 积分后）：{verb}。"
            )
        if self.kind == "transfer_ring":
            return f"{p['hours']} 小时内有 {p['senders']} 位或更多会员向同一会员转赠积分：{verb}。"
        if self.kind == "transfer_chain":
            return (
                f"会员将收到的转赠积分在 {p['hours']} 小时内转赠给其他会员达 "
                f"{p['share_percent']}% 或以上（至少 {p['min_points']:,} 积分）：{verb}。"
            )
        if self.kind == "new_member_inflow":
            return f"注册不足 {p['days']} 天的会员收到超过 {p['points']:,} 积分：{verb}。"
        return (
            f"计划在 {window}内的发放量高于近 {p['trailing_days']} 天同期中位数 "
            f"{p['threshold']} 个中位绝对偏差（且至少 {p['min_points']:,} 积分）：{verb}。"
        )


_VERBS = {
    "flag": "open a case for review",
    "hold": "open a case and keep the member's new points pending until released",
    "block": "refuse the operation",
}
_VERBS_ZH = {
    "flag": "开立风控案件待审核",
    "hold": "开立案件并冻结新积分直至人工放行",
    "block": "拒绝该操作",
}

# Each kind's parameters: name -> (default or None when required, minimum, maximum).
_PARAMS: dict[str, dict[str, tuple[Any, int, int]]] = {
    "velocity": {"limit": (None, 1, MAX_LIMIT)},
    "farming": {
        "refunded_percent": (None, 1, 100),
        "days": (30, 1, 365),
        "min_points": (100, 0, MAX_LIMIT),
    },
    "transfer_ring": {"senders": (None, 2, 10_000), "hours": (24, 1, 24 * 31)},
    "transfer_chain": {
        "share_percent": (80, 1, 100),
        "hours": (24, 1, 24 * 31),
        "min_points": (1000, 1, MAX_LIMIT),
    },
    "new_member_inflow": {"points": (None, 1, MAX_LIMIT), "days": (7, 1, 365)},
    "issuance_spike": {
        "threshold": (6, 1, 1000),
        "trailing_days": (28, 2, 365),
        "min_points": (1000, 0, MAX_LIMIT),
    },
}
_CHOICES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "velocity": {
        "scope": ("member", SCOPES),
        "measure": ("earns", MEASURES),
        "window": (
            "hour",
            tuple(WINDOWS),
        ),
    },
    "issuance_spike": {"window": ("hour", tuple(WINDOWS))},
}


@dataclass(frozen=True)
class RiskRules:
    """A program's risk rules (possibly none)."""

    rules: tuple[RiskRule, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskRules:
        """Parse ``{"rules": [...]}``; :class:`InvalidRule` says what is wrong and where."""
        if not isinstance(data, Mapping):
            raise InvalidRule("risk rules must be an object with a list of rules")
        unknown = set(data) - {"rules"}
        if unknown:
            raise InvalidRule(f"unknown risk rule settings: {', '.join(sorted(unknown))}")
        raw = data.get("rules", [])
        if not isinstance(raw, list):
            raise InvalidRule("'rules' must be a list")
        if len(raw) > MAX_RULES:
            raise InvalidRule(f"at most {MAX_RULES} risk rules")
        rules = tuple(parse_rule(item, i) for i, item in enumerate(raw))
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise InvalidRule(f"two risk rules have the id {rule.id!r}", field="id")
            seen.add(rule.id)
        return cls(rules)

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [r.to_dict() for r in self.rules]}

    def of_kind(self, *kinds: str) -> list[RiskRule]:
        return [r for r in self.rules if r.kind in kinds]

    def blocking(self, kind: str) -> list[RiskRule]:
        """The ``block`` rules of ``kind`` (checked inside the write's transaction)."""
        return [r for r in self.rules if r.kind == kind and r.action == "block"]

    def windowed(self) -> list[RiskRule]:
        """The rules the risk job evaluates: every ``flag`` and ``hold`` rule."""
        return [r for r in self.rules if r.action != "block"]

    def get(self, rule_id: str) -> RiskRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def parse_rule(item: Any, index: int) -> RiskRule:
    """One rule from its JSON form, with defaults filled in."""
    where = f"risk rule {index + 1}"
    if not isinstance(item, Mapping):
        raise InvalidRule(f"{where} must be an object")
    rule_id, kind, action = item.get("id"), item.get("kind"), item.get("action", "flag")
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise InvalidRule(
            f"{where}: 'id' must be 1 to 64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit",
            field="id",
        )
    if kind not in KINDS:
        raise InvalidRule(f"{where}: 'kind' must be one of {', '.join(KINDS)}", field="kind")
    if action not in ACTIONS:
        raise InvalidRule(f"{where}: 'action' must be one of {', '.join(ACTIONS)}", field="action")
    if action == "block" and kind not in BLOCKING_KINDS:
        raise InvalidRule(
            f"{where}: only {' and '.join(BLOCKING_KINDS)} rules can block (they are checked "
            "in the write itself); use 'flag' or 'hold'",
            field="action",
        )
    if kind == "issuance_spike" and action != "flag":
        raise InvalidRule(f"{where}: an issuance spike concerns the whole program; it only flags")
    params = _numbers(item, kind, where) | _choices(item, kind, where)
    if action == "hold" and params.get("scope", "member") != "member":
        raise InvalidRule(
            f"{where}: 'hold' keeps a member's points pending, so it needs scope 'member'; "
            "a location or device rule can flag or block",
            field="action",
        )
    unknown = set(item) - {"id", "kind", "action"} - set(params)
    if unknown:
        raise InvalidRule(f"{where}: unknown settings {', '.join(sorted(unknown))} for {kind}")
    return RiskRule(rule_id, kind, action, params)


def _numbers(item: Mapping[str, Any], kind: str, where: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, (default, low, high) in _PARAMS[kind].items():
        value = item.get(name, default)
        if value is None:
            raise InvalidRule(f"{where}: {kind} needs '{name}'", field=name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidRule(
                f"{where}: '{name}' must be a whole number from {low:,} to {high:,}", field=name
            )
        params[name] = value
    return params


def _choices(item: Mapping[str, Any], kind: str, where: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, (default, allowed) in _CHOICES.get(kind, {}).items():
        value = item.get(name, default)
        if value not in allowed:
            raise InvalidRule(f"{where}: '{name}' must be one of {', '.join(allowed)}", field=name)
        params[name] = value
    return params


@dataclass(frozen=True)
class Spike:
    """An issuance figure against its history: the median, the median absolute deviation
    and how far above the median the figure is, in deviations."""

    current: int
    median: float
    mad: float
    score: float


def spike_score(current: int, history: Sequence[int]) -> Spike:
    """How unusual ``current`` is against ``history`` (the same windows before it), with
    the median and the median absolute deviation (robust: one huge past day does not hide
    the next one, as it would with a mean and a standard deviation).

    A history with no spread (MAD 0) uses 1 point as its deviation, so a quiet program that
    suddenly issues still scores high, and a flat one that issues the same does not.
    """
    if not history:
        return Spike(current, 0.0, 0.0, 0.0)
    median = float(statistics.median(history))
    mad = float(statistics.median([abs(x - median) for x in history]))
    score = (current - median) / max(mad, 1.0)
    return Spike(current, median, mad, score)
