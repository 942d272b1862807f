"""The reward catalog's rules as plain Python: a reward's terms, who may redeem it now and why
not, fulfilment states, draws and coupon codes.

A :class:`RewardTerms` is one immutable version of a reward's price and rules (like a rule
set for earning); it round-trips through a JSON-able dict, which is how versions are stored.
A redemption records the version it used.

Draws (积分抽奖) are recomputable: the service records a random seed per draw, and
:func:`draw_value` and :func:`pick_prize` turn the seed and the version's prize table into the
outcome, so an auditor with the seed and the version gets the same prize.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loyalty.domain.checks import (
    MAX_POINTS,
    clean_text,
    require_aware,
    require_int,
)
from loyalty.errors import FulfilmentConflict, InvalidInput, InvalidRule

KINDS = ("coupon", "voucher", "item", "draw")
LIMIT_PERIODS = ("day", "month", "lifetime")
# Draw probabilities are in parts per million of one draw.
PPM = 1_000_000
MAX_QUANTITY = 100
MAX_CODE_LENGTH = 64
# Codes a person reads from a screen: no 0/O, 1/I/L.
DEFAULT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

# Fulfilment: which states a redemption may move to from each state, by reward kind.
# Digital rewards (coupon, voucher, a draw) are ``issued`` and may only be cancelled.
_ITEM_FLOW = {
    "issued": ("packing", "shipped", "cancelled"),
    "packing": ("shipped", "cancelled"),
    "shipped": ("delivered", "cancelled"),
    "delivered": (),
    "cancelled": (),
}
_DIGITAL_FLOW = {"issued": ("cancelled",), "cancelled": ()}
FULFILMENT_STATES = tuple(_ITEM_FLOW)
OPEN_STATES = ("issued", "packing", "shipped")


@dataclass(frozen=True)
class Prize:
    """One outcome of a draw: the reward it awards (by code) and its chance in ppm."""

    reward: str
    chance_ppm: int
    label: str = ""


@dataclass(frozen=True)
class RewardTerms:
    """One version of a reward's price and rules."""

    name: str
    points: int
    description: str = ""
    image_url: str = ""
    visible: bool = True
    active_from: dt.datetime | None = None
    active_until: dt.datetime | None = None
    limits: Mapping[str, int] = field(default_factory=dict)  # period -> quantity per member
    min_balance: int = 0
    tier_points: Mapping[str, int] = field(default_factory=dict)  # tier -> price (once tiers)
    tiers: tuple[str, ...] = ()  # tiers that may redeem (empty: everyone)
    voucher_amount_minor: int = 0
    voucher_valid_days: int = 0
    prizes: tuple[Prize, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, kind: str) -> RewardTerms:
        """Parse and check stored or submitted terms for a reward of ``kind``."""
        if not isinstance(data, Mapping):
            raise InvalidRule("reward terms must be an object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidRule(f"unknown reward terms: {', '.join(map(str, unknown))}")
        terms = cls(
            name=clean_text("name", data.get("name"), max_length=120),
            points=_points("points", data.get("points"), minimum=0 if kind == "draw" else 1),
            description=_optional_text("description", data.get("description"), 2000),
            image_url=_image_url(data.get("image_url")),
            visible=_flag("visible", data.get("visible", True)),
            active_from=_moment("active_from", data.get("active_from")),
            active_until=_moment("active_until", data.get("active_until")),
            limits=_limits(data.get("limits") or {}),
            min_balance=_points("min_balance", data.get("min_balance", 0), minimum=0),
            tier_points={
                str(k): _points(f"tier_points[{k}]", v, minimum=0)
                for k, v in dict(data.get("tier_points") or {}).items()
            },
            tiers=tuple(str(t) for t in data.get("tiers") or ()),
            voucher_amount_minor=_points(
                "voucher_amount_minor", data.get("voucher_amount_minor", 0), minimum=0
            ),
            voucher_valid_days=require_int(
                "voucher_valid_days", data.get("voucher_valid_days", 0), minimum=0, maximum=3660
            ),
            prizes=_prizes(data.get("prizes") or ()),
        )
        terms.check(kind)
        return terms

    def check(self, kind: str) -> None:
        """Raise :class:`InvalidRule` unless these terms make sense for ``kind``."""
        if kind not in KINDS:
            raise InvalidRule(f"unknown reward kind {kind!r}; use one of {', '.join(KINDS)}")
        if self.active_from and self.active_until and self.active_until <= self.active_from:
            raise InvalidRule("active_until must be after active_from")
        if kind == "voucher" and (self.voucher_amount_minor < 1 or self.voucher_valid_days < 1):
            raise InvalidRule(
                "a voucher needs voucher_amount_minor (its value in minor units, at least 1) "
                "and voucher_valid_days (at least 1)"
            )
        if kind != "voucher" and (self.voucher_amount_minor or self.voucher_valid_days):
            raise InvalidRule("voucher_amount_minor and voucher_valid_days are for vouchers only")
        if kind == "draw":
            if not self.prizes:
                raise InvalidRule("a draw needs at least one prize")
            if sum(p.chance_ppm for p in self.prizes) > PPM:
                # up to 10 digits: one ppm over (100.0001%) must not print as 100%
                raise InvalidRule(
                    "the prizes' chances add up to more than 100% "
                    f"({sum(p.chance_ppm for p in self.prizes) / 10_000:.10g}%)"
                )
        elif self.prizes:
            raise InvalidRule("only a draw has prizes")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {
            "name": self.name,
            "points": self.points,
            "description": self.description,
            "image_url": self.image_url,
            "visible": self.visible,
            "active_from": self.active_from.isoformat() if self.active_from else None,
            "active_until": self.active_until.isoformat() if self.active_until else None,
            "limits": dict(self.limits),
            "min_balance": self.min_balance,
            "tier_points": dict(self.tier_points),
            "tiers": list(self.tiers),
            "voucher_amount_minor": self.voucher_amount_minor,
            "voucher_valid_days": self.voucher_valid_days,
            "prizes": [
                {"reward": p.reward, "chance_ppm": p.chance_ppm, "label": p.label}
                for p in self.prizes
            ],
        }
        return out

    def price(self, tier: str | None = None) -> int:
        """Points per unit for a member of ``tier`` (the tier's price if it has one)."""
        if tier is not None and tier in self.tier_points:
            return self.tier_points[tier]
        return self.points

    @property
    def no_prize_ppm(self) -> int:
        """The chance (ppm) that a draw awards nothing."""
        return PPM - sum(p.chance_ppm for p in self.prizes)


def _points(name: str, value: Any, *, minimum: int) -> int:
    return require_int(name, value, minimum=minimum, maximum=MAX_POINTS)


def _optional_text(name: str, value: Any, max_length: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    return clean_text(name, value, max_length=max_length, multiline=True)


def _image_url(value: Any) -> str:
    url = _optional_text("image_url", value, 500)
    if url and not url.startswith(("https://", "http://", "/")):
        raise InvalidRule("image_url must be an http(s) address or a path starting with /")
    return url


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRule(f"{name} must be true or false")
    return value


def _moment(name: str, value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidRule(f"{name} is not an ISO 8601 time: {value!r:.60}") from exc
    return require_aware(name, value)


def _limits(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise InvalidRule("limits must map day, month or lifetime to a quantity")
    limits: dict[str, int] = {}
    for period, count in value.items():
        if period not in LIMIT_PERIODS:
            raise InvalidRule(f"unknown limit period {period!r}; use day, month or lifetime")
        if count is None:
            continue
        limits[str(period)] = require_int(f"limits[{period}]", count, minimum=1)
    return limits


def _prizes(value: Any) -> tuple[Prize, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidRule("prizes must be a list of {reward, chance_ppm, label}")
    prizes = []
    for n, raw in enumerate(value):
        if not isinstance(raw, Mapping):
            raise InvalidRule(f"prize {n + 1} must be an object")
        prizes.append(
            Prize(
                reward=clean_text(f"prizes[{n}].reward", raw.get("reward"), max_length=64),
                chance_ppm=require_int(
                    f"prizes[{n}].chance_ppm", raw.get("chance_ppm"), minimum=1, maximum=PPM
                ),
                label=_optional_text(f"prizes[{n}].label", raw.get("label"), 120),
            )
        )
    if len({p.reward for p in prizes}) != len(prizes):
        raise InvalidRule("a reward appears twice among the prizes")
    return tuple(prizes)


def require_reward_code(value: Any, *, name: str = "reward") -> str:
    """A reward's code: printable, at most 64 characters (``coffee-voucher``, ``积分咖啡``)."""
    return clean_text(name, value, max_length=64)


def require_quantity(value: Any) -> int:
    """How many of a reward one redemption takes: 1 to :data:`MAX_QUANTITY`."""
    return require_int("quantity", value, minimum=1, maximum=MAX_QUANTITY)


@dataclass(frozen=True)
class Usage:
    """What a member has redeemed of one reward (not cancelled) in the current local day,
    month and ever."""

    day: int = 0
    month: int = 0
    lifetime: int = 0


def unavailable_reasons(
    terms: RewardTerms,
    *,
    now: dt.datetime,
    retired: bool,
    stock_left: int | None,
    quantity: int = 1,
    available_points: int | None = None,
    usage: Usage | None = None,
    tier: str | None = None,
) -> list[str]:
    """Why a member cannot redeem ``quantity`` of this reward now (empty: they can).

    Reasons, as codes: ``retired``, ``not_started``, ``ended``, ``hidden`` (not offered;
    still redeemable by code from a shop's own page is *not* allowed either), ``tier``,
    ``out_of_stock``, ``limit_day``/``limit_month``/``limit_lifetime``, ``min_balance``,
    ``insufficient_points``. Without a member (``available_points`` None) only the reward's
    own reasons are given.
    """
    reasons: list[str] = []
    if retired:
        reasons.append("retired")
    if terms.active_from is not None and now < terms.active_from:
        reasons.append("not_started")
    if terms.active_until is not None and now >= terms.active_until:
        reasons.append("ended")
    if not terms.visible:
        reasons.append("hidden")
    if terms.tiers and tier not in terms.tiers:
        reasons.append("tier")
    if stock_left is not None and stock_left < quantity:
        reasons.append("out_of_stock")
    if usage is not None:
        for period in LIMIT_PERIODS:
            limit = terms.limits.get(period)
            if limit is not None and getattr(usage, period) + quantity > limit:
                reasons.append(f"limit_{period}")
    if available_points is not None:
        if available_points < terms.min_balance:
            reasons.append("min_balance")
        elif available_points < terms.price(tier) * quantity:
            reasons.append("insufficient_points")
    return reasons


def next_state(kind: str, current: str, target: str, *, redemption: str) -> str:
    """``target`` if a ``kind`` redemption may move there from ``current``; else
    :class:`FulfilmentConflict` naming the moves that are possible."""
    flow = _ITEM_FLOW if kind == "item" else _DIGITAL_FLOW
    if target not in FULFILMENT_STATES:
        raise InvalidInput(
            f"unknown fulfilment state {target!r}; use one of {', '.join(FULFILMENT_STATES)}",
            field="status",
        )
    allowed = flow.get(current, ())
    if target not in allowed:
        possible = ", ".join(allowed) if allowed else "none (it is final)"
        raise FulfilmentConflict(
            f"redemption {redemption} is {current}; it cannot become {target} "
            f"(possible: {possible})",
            redemption=redemption,
            status=current,
            target=target,
        )
    return target


# Draws ------------------------------------------------------------------------------------


def new_draw_seed() -> str:
    """A fresh random seed for one draw (128 bits, hex), recorded with its outcome."""
    return secrets.token_hex(16)


def draw_value(seed: str) -> int:
    """The draw's number in ``[0, PPM)`` from its recorded seed (SHA-256, then modulo; the
    bias of reducing 256 bits modulo a million is below 1e-70)."""
    digest = hashlib.sha256(f"jifen-draw:{seed}".encode()).digest()
    return int.from_bytes(digest, "big") % PPM


def pick_prize(prizes: Sequence[Prize], value: int) -> Prize | None:
    """The prize whose band holds ``value`` (prizes take consecutive bands in their order;
    the rest of ``[0, PPM)`` is no prize)."""
    start = 0
    for prize in prizes:
        if start <= value < start + prize.chance_ppm:
            return prize
        start += prize.chance_ppm
    return None


# Codes ------------------------------------------------------------------------------------


def require_code(value: Any, *, name: str = "code") -> str:
    """A coupon or voucher code: printable ASCII without spaces, 4 to 64 characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    code = value.strip()
    if not (4 <= len(code) <= MAX_CODE_LENGTH) or not code.isascii() or not code.isprintable():
        raise InvalidInput(
            f"{name} {code[:70]!r} must be 4 to {MAX_CODE_LENGTH} printable ASCII characters",
            field=name,
        )
    if any(c.isspace() or c in ",;\"'" for c in code):
        raise InvalidInput(f"{name} {code!r} contains a space, comma, quote or semicolon")
    return code


def generate_codes(
    count: int, *, length: int = 10, alphabet: str = DEFAULT_ALPHABET, prefix: str = ""
) -> list[str]:
    """``count`` distinct random codes of ``prefix`` plus ``length`` characters of
    ``alphabet`` (cryptographically random). Refuses a space too small to make them
    distinct and hard to guess (fewer than a million possible codes per code asked for)."""
    count = require_int("count", count, minimum=1, maximum=1_000_000)
    length = require_int("length", length, minimum=4, maximum=MAX_CODE_LENGTH)
    chars = "".join(dict.fromkeys(alphabet))
    if len(chars) < 2 or not chars.isascii() or not chars.isalnum():
        raise InvalidInput("the alphabet needs at least two distinct ASCII letters or digits")
    if len(prefix) + length > MAX_CODE_LENGTH:
        raise InvalidInput(f"prefix and length make codes longer than {MAX_CODE_LENGTH}")
    if prefix:
        require_code(prefix + chars[0] * 4, name="prefix")
    if len(chars) ** length < count * 1_000_000:
        raise InvalidInput(
            f"{len(chars)} characters at length {length} make too few codes to be hard to "
            f"guess for {count} codes; make the codes longer"
        )
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(prefix + "".join(secrets.choice(chars) for _ in range(length)))
    return sorted(codes)


def parse_code_csv(text: str) -> list[str]:
    """Codes from a CSV export: the ``code`` column if the first row names one, else the
    first column; blank lines skipped. A bad or repeated code is an error naming its line."""
    if not isinstance(text, str):
        raise InvalidInput("the code file must be text (UTF-8)")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    column = 0
    start = 0
    if rows and any(cell.strip().lower() == "code" for cell in rows[0]):
        column = [cell.strip().lower() for cell in rows[0]].index("code")
        start = 1
    codes: list[str] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if column >= len(row):
            raise InvalidInput(f"line {number} has no code column", line=number)
        try:
            code = require_code(row[column])
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}: {exc.message}", line=number) from None
        if code in seen:
            raise InvalidInput(
                f"line {number}: code {code!r} repeats line {seen[code]}", line=number
            )
        seen[code] = number
        codes.append(code)
    if not codes:
        raise InvalidInput("the file holds no codes")
    return codes
