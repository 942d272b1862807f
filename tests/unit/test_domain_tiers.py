"""The tier rules as plain functions: validation of every setting, windows, period ends,
grace, what evaluations and reversals decide, and the tier multiplier's rounding."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from loyalty.domain.rounding import Rounding
from loyalty.domain.tiers import MAX_TIERS, TierRules, calendar_block_start, next_boundary
from loyalty.errors import InvalidRule

SHANGHAI = "Asia/Shanghai"
LADDER: list[dict[str, Any]] = [
    {"code": "member", "name": "普通", "threshold": 0},
    {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
    {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
]


def rules(**changes: Any) -> TierRules:
    return TierRules.from_dict({"tiers": LADDER, **changes})


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A Shanghai wall time, in UTC."""
    wall = dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(SHANGHAI))
    return wall.astimezone(dt.UTC)


# --- validation -----------------------------------------------------------------------------


def test_the_defaults_and_the_dict_form_round_trip() -> None:
    parsed = rules()
    assert (parsed.measure, parsed.window, parsed.window_months) == ("points", "rolling", 12)
    assert (parsed.anchor, parsed.period_months, parsed.grace_days) == ("upgrade", 12, 0)
    assert (parsed.downgrade, parsed.on_reversal) == ("one", "next_evaluation")
    assert TierRules.from_dict(parsed.to_dict()) == parsed
    assert parsed.to_dict()["tiers"][1]["multiplier"] == "1.5"
    assert parsed.tier("silver").name == "银卡"


@pytest.mark.parametrize(
    "changes",
    [
        {"measure": "balance"},
        {"window": "sliding"},
        {"window_months": 0},
        {"window_months": 121},
        {"window_months": "12"},
        {"window_months": True},
        {"window": "calendar", "window_months": 5},
        {"anchor": "birthday"},
        {"period_months": 0},
        {"anchor": "calendar", "period_months": 7},
        {"grace_days": -1},
        {"grace_days": 367},
        {"grace_days": 1.5},
        {"downgrade": "two"},
        {"on_reversal": "never"},
        {"count_adjustments": "yes"},
        {"count_transfers": 1},
        {"colour": "gold"},
        {"tiers": []},
        {"tiers": "member"},
        {"tiers": None},
    ],
)
def test_every_setting_is_checked(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidRule):
        rules(**changes)


def tier_list(*overrides: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**base, **extra} for base, extra in zip(LADDER, overrides, strict=False)]


@pytest.mark.parametrize(
    ("ladder", "says"),
    [
        (tier_list({"threshold": 1}), "threshold 0"),
        (tier_list({}, {"threshold": 0}), "threshold above"),
        (tier_list({}, {}, {"threshold": 1_000}), "threshold above"),
        (tier_list({}, {}, {"threshold": 999}), "threshold above"),
        (tier_list({}, {}, {"code": "silver"}), "threshold above|different"),
        (tier_list({}, {"code": "Silver"}), "code"),
        (tier_list({}, {"code": "-silver"}), "code"),
        (tier_list({}, {"code": "银"}), "code"),
        (tier_list({}, {"code": "s" * 33}), "code"),
        (tier_list({}, {"code": 7}), "code"),
        (tier_list({}, {"name": "  "}), "name"),
        (tier_list({}, {"name": "名" * 61}), "name"),
        (tier_list({}, {"threshold": -5}), "threshold"),
        (tier_list({}, {"threshold": "1000"}), "threshold"),
        (tier_list({}, {"threshold": 10**12 + 1}), "threshold"),
        (tier_list({}, {"threshold": 1.5}), "threshold"),
        (tier_list({}, {"multiplier": "0.5"}), "multiplier"),
        (tier_list({}, {"multiplier": "101"}), "multiplier"),
        (tier_list({}, {"multiplier": 1.5}), "multiplier"),
        (tier_list({}, {"multiplier": "NaN"}), "multiplier"),
        (tier_list({}, {"multiplier": "Infinity"}), "multiplier"),
        (tier_list({}, {"benefits": "free tea"}), "benefits"),
        (tier_list({}, {"benefits": [""]}), "benefits"),
        (tier_list({}, {"benefits": ["x" * 201]}), "benefits"),
        (tier_list({}, {"benefits": ["tea"] * 21}), "benefits"),
        (tier_list({}, {"perks": []}), "unknown"),
        ([{"code": "member", "threshold": 0}, "silver"], "mapping"),
    ],
)
def test_a_bad_tier_is_refused_with_a_reason(ladder: list[Any], says: str) -> None:
    with pytest.raises(InvalidRule, match=says):
        TierRules.from_dict({"tiers": ladder})


def test_duplicate_codes_are_refused_even_with_rising_thresholds() -> None:
    ladder = [
        {"code": "member", "threshold": 0},
        {"code": "silver", "threshold": 10},
        {"code": "silver", "threshold": 20},
    ]
    with pytest.raises(InvalidRule, match="different"):
        TierRules.from_dict({"tiers": ladder})


def test_a_code_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidRule, match="code"):
        TierRules.from_dict({"tiers": tier_list({}, {"code": "silver\n"})})


@pytest.mark.parametrize("value", ["1e999999", "1e-999999", "-1e999999"])
def test_an_absurd_multiplier_is_refused_with_the_value_as_given(value: str) -> None:
    ladder = tier_list({}, {"multiplier": value})
    with pytest.raises(InvalidRule, match="multiplier") as info:
        TierRules.from_dict({"tiers": ladder})
    assert value in str(info.value)


def test_the_ladder_has_at_most_twenty_tiers() -> None:
    ladder = [{"code": f"t{i}", "threshold": i} for i in range(MAX_TIERS)]
    assert len(TierRules.from_dict({"tiers": ladder}).tiers) == MAX_TIERS
    ladder.append({"code": "one-more", "threshold": MAX_TIERS})
    with pytest.raises(InvalidRule, match="at most"):
        TierRules.from_dict({"tiers": ladder})


def test_huge_thresholds_follow_the_measure() -> None:
    points = [{"code": "member", "threshold": 0}, {"code": "top", "threshold": 10**12}]
    assert rules(tiers=points).tier("top").threshold == 10**12
    money = [{"code": "member", "threshold": 0}, {"code": "top", "threshold": 10**14}]
    assert rules(tiers=money, measure="money").tier("top").threshold == 10**14
    with pytest.raises(InvalidRule):
        rules(tiers=money)  # 10**14 points is beyond the points limit


def test_unicode_names_and_benefits_are_kept_trimmed() -> None:
    ladder = [
        {"code": "member", "name": " 普通会员 ", "threshold": 0, "benefits": [" 生日礼 "]},
        {"code": "vip", "name": "💎 VIP", "threshold": 1, "multiplier": "100"},
    ]
    parsed = TierRules.from_dict({"tiers": ladder})
    assert parsed.tier("member").name == "普通会员"
    assert parsed.tier("member").benefits == ("生日礼",)
    assert parsed.tier("vip").multiplier == 100
    assert parsed.tier(None).code == "member"


def test_an_unknown_tier_code_is_an_invalid_rule() -> None:
    parsed = rules()
    assert not parsed.knows("platinum")
    assert parsed.multiplier("platinum") == 1
    with pytest.raises(InvalidRule, match="platinum"):
        parsed.rank("platinum")


def test_counted_sources_follow_the_flags() -> None:
    assert rules().counted_sources() == ("purchase", "action", "refund", "dispute")
    both = rules(count_adjustments=True, count_transfers=True).counted_sources()
    assert both[-2:] == ("adjustment", "transfer")


# --- windows --------------------------------------------------------------------------------


def test_a_rolling_window_starts_the_same_wall_time_months_before() -> None:
    assert rules().window_since(at(2027, 3, 1, 18), SHANGHAI) == at(2026, 3, 1, 18)
    three = rules(window_months=3)
    assert three.window_since(at(2026, 5, 31, 9, 30), SHANGHAI) == at(2026, 2, 28, 9, 30)


@pytest.mark.parametrize(
    ("months", "until", "since"),
    [
        (12, at(2027, 1, 1), at(2026, 1, 1)),  # a year closes at midnight of 1 January
        (12, at(2026, 7, 15, 12), at(2026, 1, 1)),
        (3, at(2026, 4, 1), at(2026, 1, 1)),
        (3, at(2026, 4, 1, 0, 1), at(2026, 4, 1)),
        (6, at(2026, 12, 31, 23, 59), at(2026, 7, 1)),
        (1, at(2026, 3, 1), at(2026, 2, 1)),
    ],
)
def test_a_calendar_window_is_the_block_the_moment_closes(
    months: int, until: dt.datetime, since: dt.datetime
) -> None:
    calendar = rules(window="calendar", window_months=months)
    assert calendar.window_since(until, SHANGHAI) == since


def test_calendar_blocks_are_aligned_to_january() -> None:
    assert calendar_block_start(dt.date(2026, 11, 30), 3) == dt.date(2026, 10, 1)
    assert calendar_block_start(dt.date(2026, 6, 30), 6) == dt.date(2026, 1, 1)
    assert calendar_block_start(dt.date(2026, 2, 14), 2) == dt.date(2026, 1, 1)
    assert calendar_block_start(dt.date(2026, 12, 1), 12) == dt.date(2026, 1, 1)


# --- periods --------------------------------------------------------------------------------


def test_month_ends_clamp_without_drift_from_a_31_january_origin() -> None:
    origin = dt.date(2026, 1, 31)
    ends = []
    after = at(2026, 1, 31, 12)
    for _ in range(4):
        after = next_boundary(origin, 1, after, SHANGHAI)
        ends.append(after)
    assert ends == [at(2026, 2, 28), at(2026, 3, 31), at(2026, 4, 30), at(2026, 5, 31)]
    assert next_boundary(dt.date(2027, 1, 31), 1, at(2028, 2, 1), SHANGHAI) == at(2028, 2, 29)


def test_next_boundary_is_strictly_after_and_at_least_one_step() -> None:
    origin = dt.date(2026, 3, 1)
    assert next_boundary(origin, 12, at(2026, 3, 1), SHANGHAI) == at(2027, 3, 1)
    assert next_boundary(origin, 12, at(2027, 3, 1), SHANGHAI) == at(2028, 3, 1)
    assert next_boundary(origin, 12, at(2027, 2, 28, 23, 59), SHANGHAI) == at(2027, 3, 1)
    assert next_boundary(origin, 12, at(2031, 6, 1), SHANGHAI) == at(2032, 3, 1)


def test_an_upgrade_period_ends_at_the_local_midnight_months_after_the_upgrade_day() -> None:
    upgraded = at(2026, 3, 1, 18)
    end = rules().period_end(
        tz=SHANGHAI, after=upgraded, tier_since=upgraded, joined=at(2020, 5, 5)
    )
    assert end == at(2027, 3, 1)
    later = rules().period_end(tz=SHANGHAI, after=end, tier_since=upgraded, joined=at(2020, 5, 5))
    assert later == at(2028, 3, 1)


def test_a_join_period_ends_at_the_join_anniversary() -> None:
    join = rules(anchor="join")
    joined = at(2025, 8, 20, 9)
    end = join.period_end(tz=SHANGHAI, after=at(2026, 3, 1, 18), tier_since=at(2026, 3, 1, 18),
                          joined=joined)  # fmt: skip
    assert end == at(2026, 8, 20)
    quarterly = rules(anchor="join", period_months=3)
    assert quarterly.period_end(
        tz=SHANGHAI, after=at(2026, 3, 1, 18), tier_since=at(2026, 3, 1), joined=joined
    ) == at(2026, 5, 20)


@pytest.mark.parametrize(
    ("months", "after", "end"),
    [
        (12, at(2026, 3, 1, 18), at(2027, 1, 1)),
        (12, at(2026, 12, 31, 23, 59), at(2027, 1, 1)),
        (12, at(2027, 1, 1), at(2028, 1, 1)),
        (3, at(2026, 3, 1, 18), at(2026, 4, 1)),
        (3, at(2026, 12, 15), at(2027, 1, 1)),
        (6, at(2026, 7, 1), at(2027, 1, 1)),
        (1, at(2026, 2, 28, 23, 59), at(2026, 3, 1)),
    ],
)
def test_a_calendar_period_ends_at_the_next_calendar_boundary(
    months: int, after: dt.datetime, end: dt.datetime
) -> None:
    calendar = rules(anchor="calendar", period_months=months)
    assert calendar.period_end(tz=SHANGHAI, after=after, tier_since=after, joined=after) == end


def test_the_evaluation_is_due_grace_local_days_after_the_period_end() -> None:
    assert rules().due(at(2027, 3, 1), SHANGHAI) == at(2027, 3, 1)
    assert rules(grace_days=30).due(at(2027, 3, 1), SHANGHAI) == at(2027, 3, 31)
    assert rules(grace_days=366).due(at(2027, 3, 1), SHANGHAI) == at(2028, 3, 1)


# --- decisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("downgrade", "current", "measure", "lock", "expected"),
    [
        ("one", 2, 6_000, None, 2),  # keeps
        ("one", 2, 0, None, 1),  # one down
        ("one", 2, 1_500, None, 1),
        ("one", 1, 0, None, 0),
        ("one", 0, 6_000, None, 2),  # an evaluation may move up
        ("one", 1, 5_000, None, 2),
        ("one", 2, 0, 2, 2),  # a lock is a floor
        ("one", 2, 0, 1, 1),
        ("one", 1, 0, 2, 2),  # a lock above the tier lifts it
        ("to_measure", 2, 0, None, 0),
        ("to_measure", 2, 999, None, 0),
        ("to_measure", 2, 1_000, None, 1),
        ("to_measure", 2, 0, 1, 1),
        ("to_measure", 0, 5_000, None, 2),
    ],
)
def test_what_an_evaluation_decides(
    downgrade: str, current: int, measure: int, lock: int | None, expected: int
) -> None:
    assert rules(downgrade=downgrade).evaluate(current, measure, lock) == expected


@pytest.mark.parametrize(
    ("policy", "current", "measure", "lock", "expected"),
    [
        ("next_evaluation", 2, 0, None, 2),
        ("next_evaluation", 1, 0, None, 1),
        ("at_once", 2, 0, None, 0),
        ("at_once", 2, 1_000, None, 1),
        ("at_once", 2, 5_000, None, 2),
        ("at_once", 1, 6_000, None, 1),  # a reversal never moves up
        ("at_once", 2, 0, 1, 1),
        ("at_once", 0, 0, None, 0),
    ],
)
def test_what_a_reversal_decides(
    policy: str, current: int, measure: int, lock: int | None, expected: int
) -> None:
    assert rules(on_reversal=policy).after_reversal(current, measure, lock) == expected


def test_supported_and_above() -> None:
    parsed = rules()
    assert [parsed.supported(m) for m in (0, 999, 1_000, 4_999, 5_000, 10**12)] == [
        0, 0, 1, 1, 2, 2,
    ]  # fmt: skip
    assert parsed.above(1) == parsed.tier("gold")
    assert parsed.above(2) is None


@pytest.mark.parametrize(
    ("points", "code", "rounding", "expected"),
    [
        (101, "silver", Rounding.FLOOR, 151),  # 151.5
        (101, "silver", Rounding.HALF_UP, 152),
        (101, "silver", Rounding.HALF_EVEN, 152),
        (103, "silver", Rounding.HALF_EVEN, 154),  # 154.5 to even
        (101, "gold", Rounding.FLOOR, 202),
        (101, "member", Rounding.HALF_UP, 101),
        (101, None, Rounding.HALF_UP, 101),
        (101, "gone", Rounding.HALF_UP, 101),  # a code this version lacks earns 1 x
        (0, "gold", Rounding.FLOOR, 0),
    ],
)
def test_earn_points_rounds_by_the_program_policy(
    points: int, code: str | None, rounding: Rounding, expected: int
) -> None:
    assert rules().earn_points(points, code, rounding) == expected


def test_a_fine_multiplier_is_exact() -> None:
    ladder = [{"code": "member", "threshold": 0}, {"code": "odd", "threshold": 1,
              "multiplier": "1.333"}]  # fmt: skip
    parsed = TierRules.from_dict({"tiers": ladder})
    assert parsed.multiplier("odd") == Fraction(1333, 1000)
    assert parsed.earn_points(1000, "odd", Rounding.FLOOR) == 1333
    assert parsed.earn_points(1, "odd", Rounding.FLOOR) == 1
