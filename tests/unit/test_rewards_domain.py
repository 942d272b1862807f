"""The reward catalog's pure rules: terms, availability, fulfilment moves, codes and CSV."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loyalty.domain.rewards import (
    DEFAULT_ALPHABET,
    FULFILMENT_STATES,
    PPM,
    Prize,
    RewardTerms,
    Usage,
    draw_value,
    generate_codes,
    next_state,
    parse_code_csv,
    pick_prize,
    unavailable_reasons,
)
from loyalty.errors import (
    FulfilmentConflict,
    InvalidAmount,
    InvalidInput,
    InvalidRule,
    InvalidText,
    NaiveDatetime,
)

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
PRIZES = [
    {"reward": "mug", "chance_ppm": 100_000, "label": "A mug"},
    {"reward": "cup", "chance_ppm": 250_000},
]


def _terms(kind: str = "item", **changes: Any) -> RewardTerms:
    data: dict[str, Any] = {"name": "Mug", "points": 500}
    if kind == "voucher":
        data |= {"voucher_amount_minor": 1_000, "voucher_valid_days": 30}
    if kind == "draw":
        data |= {"points": 50, "prizes": PRIZES}
    return RewardTerms.from_dict(data | changes, kind=kind)


# --- RewardTerms.from_dict refusals ----------------------------------------------------------


REFUSED: list[tuple[str, str, dict[str, Any], type[Exception], str]] = [
    ("unknown-key", "item", {"colour": "red"}, InvalidRule, "unknown reward terms: colour"),
    ("two-unknown", "item", {"zz": 1, "aa": 2}, InvalidRule, "aa, zz"),
    ("no-name", "item", {"name": None}, InvalidInput, "name"),
    ("blank-name", "item", {"name": "   "}, InvalidInput, "name"),
    ("long-name", "item", {"name": "x" * 121}, InvalidInput, "longer than 120"),
    ("bidi-name", "item", {"name": "Mug\u202e"}, InvalidText, "name"),
    ("zero-width-name", "item", {"name": "M\u200bug"}, InvalidText, "name"),
    ("nul-name", "item", {"name": "Mug\x00"}, InvalidText, "name"),
    ("private-use-name", "item", {"name": "Mug\ue000"}, InvalidText, "name"),
    ("newline-name", "item", {"name": "Mu\ng"}, InvalidText, "name"),
    ("float-points", "item", {"points": 500.0}, InvalidAmount, "whole numbers"),
    ("bool-points", "item", {"points": True}, InvalidAmount, "integer"),
    ("string-points", "item", {"points": "500"}, InvalidAmount, "integer"),
    ("zero-points-item", "item", {"points": 0}, InvalidAmount, "positive"),
    ("negative-points", "draw", {"points": -1}, InvalidAmount, "at least 0"),
    ("huge-points", "item", {"points": 10**12 + 1}, InvalidAmount, "at most"),
    ("huge-min-balance", "item", {"min_balance": 10**30}, InvalidAmount, "at most"),
    ("float-min-balance", "item", {"min_balance": 1.5}, InvalidAmount, "min_balance"),
    ("bool-tier-price", "item", {"tier_points": {"gold": False}}, InvalidAmount, "tier_points"),
    ("visible-string", "item", {"visible": "yes"}, InvalidRule, "visible"),
    ("visible-int", "item", {"visible": 1}, InvalidRule, "visible"),
    ("image-javascript", "item", {"image_url": "javascript:alert(1)"}, InvalidRule, "image_url"),
    ("image-relative", "item", {"image_url": "img/mug.png"}, InvalidRule, "image_url"),
    (
        "bad-window",
        "item",
        {"active_from": "2026-12-01T00:00:00+00:00", "active_until": "2026-11-01T00:00:00+00:00"},
        InvalidRule,
        "after",
    ),
    (
        "empty-window",
        "item",
        {"active_from": "2026-12-01T00:00:00+00:00", "active_until": "2026-12-01T00:00:00+00:00"},
        InvalidRule,
        "after",
    ),
    ("not-iso", "item", {"active_from": "next tuesday"}, InvalidRule, "ISO 8601"),
    ("naive-window", "item", {"active_until": "2026-12-01T00:00:00"}, NaiveDatetime, "active"),
    ("limit-period", "item", {"limits": {"week": 1}}, InvalidRule, "week"),
    ("limit-zero", "item", {"limits": {"day": 0}}, InvalidAmount, "limits[day]"),
    ("limit-float", "item", {"limits": {"month": 1.0}}, InvalidAmount, "limits[month]"),
    ("limits-list", "item", {"limits": [1]}, InvalidRule, "limits"),
    ("voucher-no-amount", "voucher", {"voucher_amount_minor": 0}, InvalidRule, "voucher"),
    ("voucher-no-days", "voucher", {"voucher_valid_days": 0}, InvalidRule, "voucher"),
    ("voucher-days-huge", "voucher", {"voucher_valid_days": 3661}, InvalidAmount, "at most"),
    ("amount-on-item", "item", {"voucher_amount_minor": 100}, InvalidRule, "vouchers only"),
    (
        "prizes-over-100",
        "draw",
        {
            "prizes": [
                {"reward": "a", "chance_ppm": 600_000},
                {"reward": "b", "chance_ppm": 400_001},
            ]
        },
        InvalidRule,
        "100.0001%",
    ),
    (
        "prize-over-ppm",
        "draw",
        {"prizes": [{"reward": "a", "chance_ppm": PPM + 1}]},
        InvalidAmount,
        "chance_ppm",
    ),
    ("prize-zero", "draw", {"prizes": [{"reward": "a", "chance_ppm": 0}]}, InvalidAmount, "ppm"),
    ("prize-float", "draw", {"prizes": [{"reward": "a", "chance_ppm": 0.5}]}, InvalidAmount, "ppm"),
    (
        "prize-twice",
        "draw",
        {"prizes": [{"reward": "a", "chance_ppm": 1}, {"reward": "a", "chance_ppm": 2}]},
        InvalidRule,
        "twice",
    ),
    ("prize-not-object", "draw", {"prizes": ["a"]}, InvalidRule, "prize 1"),
    ("prizes-string", "draw", {"prizes": "a"}, InvalidRule, "list"),
    ("draw-no-prizes", "draw", {"prizes": []}, InvalidRule, "at least one prize"),
    ("prize-on-item", "item", {"prizes": PRIZES}, InvalidRule, "only a draw"),
    ("prize-on-coupon", "coupon", {"prizes": PRIZES}, InvalidRule, "only a draw"),
]


@pytest.mark.parametrize(
    ("kind", "changes", "error", "words"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_terms_refusals(
    kind: str, changes: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as raised:
        _terms(kind, **changes)
    assert words in str(raised.value)


def test_terms_are_an_object_of_a_known_kind() -> None:
    with pytest.raises(InvalidRule, match="object"):
        RewardTerms.from_dict(["name", "Mug"], kind="item")  # type: ignore[arg-type]
    with pytest.raises(InvalidRule, match="unknown reward kind 'gift'"):
        RewardTerms.from_dict({"name": "Mug", "points": 1}, kind="gift")


def test_names_in_any_script_are_kept_in_nfc() -> None:
    assert _terms(name="  积分咖啡杯 ☕  ").name == "积分咖啡杯 ☕"
    decomposed = "Cafe\u0301"  # e + combining acute
    assert _terms(name=decomposed).name == "Caf\u00e9"
    assert _terms(name="x" * 120).name == "x" * 120


def test_draws_may_be_free_and_prizes_may_fill_100_percent() -> None:
    terms = _terms(
        "draw",
        points=0,
        prizes=[{"reward": "a", "chance_ppm": 999_999}, {"reward": "b", "chance_ppm": 1}],
    )
    assert terms.points == 0
    assert terms.no_prize_ppm == 0
    assert _terms("draw").no_prize_ppm == PPM - 350_000


@pytest.mark.parametrize("kind", ["coupon", "voucher", "item", "draw"])
def test_terms_round_trip_through_their_dict(kind: str) -> None:
    terms = _terms(
        kind,
        description="Line one\nline two",
        image_url="https://cdn.example/mug.png",
        visible=False,
        active_from="2026-12-01T08:00:00+08:00",
        active_until=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        limits={"day": 1, "month": 3, "lifetime": 10},
        min_balance=1_000,
        tier_points={"gold": 400},
        tiers=["gold", "silver"],
    )
    data = terms.to_dict()
    assert data["active_from"] == "2026-12-01T00:00:00+00:00"  # stored in UTC
    again = RewardTerms.from_dict(data, kind=kind)
    assert again == terms
    assert again.to_dict() == data
    assert again.price() == terms.points
    assert again.price("gold") == 400
    assert again.price("bronze") == terms.points
    if kind == "draw":
        assert again.prizes == (Prize("mug", 100_000, "A mug"), Prize("cup", 250_000, ""))


def test_unlimited_limits_are_dropped() -> None:
    assert dict(_terms(limits={"day": None, "lifetime": 2}).limits) == {"lifetime": 2}


# --- unavailable_reasons ----------------------------------------------------------------------


def _reasons(terms: RewardTerms | None = None, **kw: Any) -> list[str]:
    args: dict[str, Any] = {"now": NOW, "retired": False, "stock_left": None} | kw
    return unavailable_reasons(terms or _terms(), **args)


def test_a_plain_reward_is_available() -> None:
    assert _reasons() == []
    assert _reasons(available_points=500, usage=Usage(), stock_left=1) == []


@pytest.mark.parametrize(
    ("changes", "kw", "reason"),
    [
        ({}, {"retired": True}, "retired"),
        ({"active_from": NOW + dt.timedelta(seconds=1)}, {}, "not_started"),
        ({"active_until": NOW}, {}, "ended"),
        ({"visible": False}, {}, "hidden"),
        ({"tiers": ["gold"]}, {}, "tier"),
        ({"tiers": ["gold"]}, {"tier": "silver"}, "tier"),
        ({}, {"stock_left": 0}, "out_of_stock"),
        ({}, {"stock_left": 2, "quantity": 3}, "out_of_stock"),
        ({"limits": {"day": 2}}, {"usage": Usage(day=2, month=2, lifetime=2)}, "limit_day"),
        ({"limits": {"month": 3}}, {"usage": Usage(day=0, month=3, lifetime=9)}, "limit_month"),
        ({"limits": {"lifetime": 1}}, {"usage": Usage(lifetime=1)}, "limit_lifetime"),
        ({"limits": {"day": 2}}, {"usage": Usage(day=1), "quantity": 2}, "limit_day"),
        ({"min_balance": 1_000}, {"available_points": 999}, "min_balance"),
        ({}, {"available_points": 499}, "insufficient_points"),
        ({}, {"available_points": 999, "quantity": 2}, "insufficient_points"),
    ],
)
def test_each_reason(changes: dict[str, Any], kw: dict[str, Any], reason: str) -> None:
    assert _reasons(_terms(**changes), **kw) == [reason]


def test_reasons_at_their_edges() -> None:
    starts = _terms(active_from=NOW, active_until=NOW + dt.timedelta(days=1))
    assert _reasons(starts) == []  # open from its first instant
    assert _reasons(starts, now=NOW + dt.timedelta(days=1)) == ["ended"]
    assert _reasons(starts, now=NOW - dt.timedelta(microseconds=1)) == ["not_started"]
    assert _reasons(_terms(tiers=["gold"]), tier="gold") == []
    assert _reasons(_terms(limits={"day": 2}), usage=Usage(day=1)) == []
    assert _reasons(available_points=500) == []
    assert _reasons(_terms(min_balance=500), available_points=500) == []
    # A tier price is charged to the tier.
    gold = _terms(tier_points={"gold": 100})
    assert _reasons(gold, available_points=100, tier="gold") == []
    assert _reasons(gold, available_points=100) == ["insufficient_points"]


def test_all_reasons_at_once_and_none_without_a_member() -> None:
    terms = _terms(
        visible=False,
        active_until=NOW,
        tiers=["gold"],
        limits={"day": 1, "month": 1, "lifetime": 1},
        min_balance=10,
    )
    everything = _reasons(
        terms, retired=True, stock_left=0, available_points=0, usage=Usage(1, 1, 1)
    )
    assert everything == [
        "retired",
        "ended",
        "hidden",
        "tier",
        "out_of_stock",
        "limit_day",
        "limit_month",
        "limit_lifetime",
        "min_balance",
    ]
    # Without a member, only the reward's own reasons.
    assert _reasons(terms, retired=True, stock_left=0) == [
        "retired",
        "ended",
        "hidden",
        "tier",
        "out_of_stock",
    ]


# --- next_state ----------------------------------------------------------------------------

ITEM_MOVES = {
    ("issued", "packing"),
    ("issued", "shipped"),
    ("issued", "cancelled"),
    ("packing", "shipped"),
    ("packing", "cancelled"),
    ("shipped", "delivered"),
    ("shipped", "cancelled"),
}
DIGITAL_MOVES = {("issued", "cancelled")}
ALL_PAIRS = [(a, b) for a in FULFILMENT_STATES for b in FULFILMENT_STATES]


@pytest.mark.parametrize("kind", ["item", "coupon", "voucher", "draw"])
@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_every_fulfilment_move(kind: str, current: str, target: str) -> None:
    allowed = ITEM_MOVES if kind == "item" else DIGITAL_MOVES
    if (current, target) in allowed:
        assert next_state(kind, current, target, redemption="7") == target
        return
    with pytest.raises(FulfilmentConflict) as raised:
        next_state(kind, current, target, redemption="7")
    error = raised.value
    assert error.details == {"redemption": "7", "status": current, "target": target}
    possible = [b for a, b in sorted(allowed) if a == current]
    named = error.message.split("(possible: ")[1].removesuffix(")")
    if possible:
        assert sorted(named.split(", ")) == sorted(possible)
    else:
        assert named == "none (it is final)"
    assert f"redemption 7 is {current}; it cannot become {target}" in error.message


def test_the_possible_moves_are_named_in_order() -> None:
    with pytest.raises(FulfilmentConflict, match=r"possible: packing, shipped, cancelled\)"):
        next_state("item", "issued", "delivered", redemption="1")
    with pytest.raises(FulfilmentConflict, match=r"possible: cancelled\)"):
        next_state("coupon", "issued", "shipped", redemption="1")


def test_an_unknown_state_is_bad_input() -> None:
    with pytest.raises(InvalidInput, match="unknown fulfilment state 'lost'") as raised:
        next_state("item", "issued", "lost", redemption="1")
    assert not isinstance(raised.value, FulfilmentConflict)
    assert raised.value.details == {"field": "status"}


# --- draws (the statistics are in tests/integration/test_rewards_draws.py) ----------------


def test_draw_value_is_a_pure_function_of_the_seed() -> None:
    values = {draw_value(f"seed-{i}") for i in range(1_000)}
    assert all(0 <= v < PPM for v in values)
    assert len(values) > 990  # distinct seeds, (almost always) distinct numbers
    assert draw_value("abc") == draw_value("abc")
    assert draw_value("abc") != draw_value("abd")


def test_pick_prize_bands_follow_the_order() -> None:
    prizes = (Prize("a", 10), Prize("b", 20))
    assert [p.reward if p else None for p in map(lambda v: pick_prize(prizes, v), range(31))] == (
        ["a"] * 10 + ["b"] * 20 + [None]
    )
    assert pick_prize(prizes, PPM - 1) is None
    assert pick_prize((Prize("all", PPM),), PPM - 1) == Prize("all", PPM)
    assert pick_prize((), 0) is None


# --- generate_codes ------------------------------------------------------------------------


def test_generated_codes_are_distinct_with_prefix_and_alphabet() -> None:
    codes = generate_codes(2_000, length=8, prefix="XMAS-")
    assert len(codes) == len(set(codes)) == 2_000
    assert codes == sorted(codes)
    for code in codes:
        assert code.startswith("XMAS-") and len(code) == 13
        assert set(code[5:]) <= set(DEFAULT_ALPHABET)
    assert not set("".join(codes)) & set("01OIL")
    hex_codes = generate_codes(50, length=12, alphabet="0123456789abcdef")
    assert all(set(c) <= set("0123456789abcdef") and len(c) == 12 for c in hex_codes)


def test_a_repeated_alphabet_counts_its_letters_once() -> None:
    # "ab" * 10 is two letters: 2**20 codes cannot hold one code per million guesses.
    with pytest.raises(InvalidInput, match="2 characters at length 20"):
        generate_codes(2, length=20, alphabet="ab" * 10)
    assert len(generate_codes(1, length=20, alphabet="ab" * 10)) == 1


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"count": 1, "length": 4, "alphabet": "0123456789"}, "too few codes"),
        ({"count": 1_000, "length": 6}, "make the codes longer"),
        ({"count": 1, "alphabet": "a"}, "two distinct"),
        ({"count": 1, "alphabet": "ab-"}, "letters or digits"),
        ({"count": 1, "alphabet": "αβγδ"}, "ASCII"),
        ({"count": 0}, "count"),
        ({"count": 1_000_001}, "count"),
        ({"count": 1.0}, "count"),
        ({"count": 1, "length": 3}, "length"),
        ({"count": 1, "length": 65}, "length"),
        ({"count": 1, "length": 60, "prefix": "ABCDEFG"}, "longer than 64"),
        ({"count": 1, "prefix": "A B"}, "space"),
        ({"count": 1, "prefix": "A,B"}, "comma"),
        ({"count": 1, "prefix": "Ä"}, "ASCII"),
    ],
)
def test_generate_codes_refusals(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        generate_codes(**kw)


# --- parse_code_csv ------------------------------------------------------------------------


def test_csv_without_header_takes_the_first_column() -> None:
    assert parse_code_csv("AAAA-1,x\nBBBB-2,y\n") == ["AAAA-1", "BBBB-2"]


def test_csv_with_a_code_column_bom_crlf_and_blank_lines() -> None:
    text = "\ufeffbatch,Code ,note\r\n1,  C0DE-1 ,a\r\n\r\n2,CODE-2,b\r\n,,\r\n3,CODE-3,\r\n"
    assert parse_code_csv(text) == ["C0DE-1", "CODE-2", "CODE-3"]


def test_csv_repeated_code_names_both_lines() -> None:
    with pytest.raises(InvalidInput, match=r"line 4: code 'AAAA' repeats line 2") as raised:
        parse_code_csv("code\nAAAA\nBBBB\nAAAA\n")
    assert raised.value.details == {"line": 4}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("code\nGOOD1\nbad code\n", 3),
        ("GOOD1\nABC\n", 2),  # too short
        ("GOOD1\n\nGOOD2\n" + "X" * 65 + "\n", 4),
        ("code\nGOOD1\nCAFÉ1\n", 3),
        ('code\nGOOD1\n"a\'bcd"\n', 3),
        ("a,code\nx,GOOD1\ny\n", 3),  # no code column on that row
    ],
)
def test_csv_bad_code_names_its_line(text: str, line: int) -> None:
    with pytest.raises(InvalidInput, match=rf"^line {line}") as raised:
        parse_code_csv(text)
    assert raised.value.details == {"line": line}


@pytest.mark.parametrize("text", ["", "\ufeff", "code\n", "\n\n,,\n"])
def test_csv_without_codes_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="holds no codes"):
        parse_code_csv(text)


def test_csv_must_be_text() -> None:
    with pytest.raises(InvalidInput, match="UTF-8"):
        parse_code_csv(b"code\nAAAA\n")  # type: ignore[arg-type]
