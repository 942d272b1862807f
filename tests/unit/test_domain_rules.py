"""Rule sets: parsing and validation, the dict round trip, ratios and campaign multipliers."""

import datetime as dt
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.calendar import ExpiryPolicy
from loyalty.domain.rules import (
    ActionRule,
    Campaign,
    Caps,
    RuleSet,
    format_ratio,
    parse_ratio,
)
from loyalty.errors import InvalidInput, InvalidRule


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


def campaign_dict(**overrides):
    data = {
        "name": "spring",
        "multiplier": "2",
        "starts_at": "2026-03-01T00:00:00+00:00",
        "ends_at": "2026-04-01T00:00:00+00:00",
    }
    data.update(overrides)
    return data


FULL_RULES = {
    "base_ratio": "1.5",
    "category_ratios": {"drinks": "2", "books": "0.5"},
    "sku_ratios": {"SKU-1": "10"},
    "campaigns": [
        {
            "name": "weekend",
            "multiplier": "3",
            "starts_at": "2026-03-01T00:00:00+00:00",
            "ends_at": "2026-04-01T00:00:00+00:00",
            "categories": ["drinks"],
            "weekdays": [5, 6],
        }
    ],
    "actions": {"signup": {"points": 100, "limit": 1, "period": "lifetime"}},
    "caps": {
        "member_daily": 500,
        "member_monthly": 5000,
        "member_yearly": None,
        "program_daily": 100000,
    },
    "pending_days": 7,
    "expiry": {"months": 12, "days": 0, "month_end": True},
}


# parse_ratio / format_ratio


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, Fraction(1)),
        (0, Fraction(0)),
        ("1", Fraction(1)),
        ("1.5", Fraction(3, 2)),
        ("0.01", Fraction(1, 100)),
        ("2.50", Fraction(5, 2)),
        ("1e2", Fraction(100)),
        (" 3 ", Fraction(3)),
    ],
)
def test_parse_ratio_is_exact(value, expected):
    assert parse_ratio(value, what="ratio") == expected


@pytest.mark.parametrize("value", [1.5, 1.0, True, False])
def test_parse_ratio_rejects_floats_and_bools(value):
    with pytest.raises(InvalidRule, match=r"decimal string like '1\.5'"):
        parse_ratio(value, what="base_ratio")


@pytest.mark.parametrize("value", ["abc", "", "1/2", None, [1], "NaN", "sNaN"])
def test_parse_ratio_rejects_non_numbers(value):
    with pytest.raises(InvalidRule, match="is not a number"):
        parse_ratio(value, what="base_ratio")


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "inf"])
def test_parse_ratio_rejects_infinity_as_invalid_rule(value):
    with pytest.raises(InvalidRule):
        parse_ratio(value, what="base_ratio")


@pytest.mark.parametrize("value", [-1, "-0.5"])
def test_parse_ratio_rejects_negative(value):
    with pytest.raises(InvalidRule, match="must not be negative"):
        parse_ratio(value, what="base_ratio")


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(Fraction(1), "1"), (Fraction(3, 2), "1.5"), (Fraction(1, 100), "0.01"), (Fraction(0), "0")],
)
def test_format_ratio(ratio, text):
    assert format_ratio(ratio) == text
    assert parse_ratio(text, what="r") == ratio


# from_dict / to_dict


def test_defaults_are_one_point_per_unit_expiring_after_three_months():
    rules = RuleSet()
    assert rules.base_ratio == 1
    assert rules.expiry == ExpiryPolicy(months=3)
    assert rules.caps == Caps()
    assert rules.pending_days == 0


def test_empty_dict_gives_the_defaults():
    assert RuleSet.from_dict({}) == RuleSet()


def test_full_dict_is_parsed():
    rules = RuleSet.from_dict(FULL_RULES)
    assert rules.base_ratio == Fraction(3, 2)
    assert rules.category_ratios == {"drinks": 2, "books": Fraction(1, 2)}
    assert rules.sku_ratios == {"SKU-1": 10}
    assert rules.campaigns == (
        Campaign(
            name="weekend",
            multiplier=Fraction(3),
            starts_at=utc(2026, 3, 1),
            ends_at=utc(2026, 4, 1),
            categories=frozenset({"drinks"}),
            weekdays=frozenset({5, 6}),
        ),
    )
    assert rules.actions == {"signup": ActionRule(points=100, limit=1, period="lifetime")}
    assert rules.caps == Caps(500, 5000, None, 100000)
    assert rules.pending_days == 7
    assert rules.expiry == ExpiryPolicy(months=12, days=0, month_end=True)


def test_full_dict_round_trips_exactly():
    assert RuleSet.from_dict(FULL_RULES).to_dict() == FULL_RULES


def test_defaults_round_trip():
    assert RuleSet.from_dict(RuleSet().to_dict()) == RuleSet()


def test_to_dict_sorts_mappings_and_stores_ratios_as_strings():
    data = RuleSet.from_dict({"category_ratios": {"b": 2, "a": "0.5"}}).to_dict()
    assert list(data["category_ratios"].items()) == [("a", "0.5"), ("b", "2")]


def test_campaign_times_are_stored_in_utc():
    rules = RuleSet.from_dict({"campaigns": [campaign_dict(starts_at="2026-03-01T08:00:00+08:00")]})
    assert rules.campaigns[0].starts_at == utc(2026, 3, 1)
    assert rules.to_dict()["campaigns"][0]["starts_at"] == "2026-03-01T00:00:00+00:00"


def test_campaign_accepts_aware_datetime_objects_and_z_suffix():
    rules = RuleSet.from_dict(
        {"campaigns": [campaign_dict(starts_at=utc(2026, 3, 1), ends_at="2026-04-01T00:00Z")]}
    )
    assert rules.campaigns[0].ends_at == utc(2026, 4, 1)


def test_campaign_multiplier_defaults_to_one():
    data = campaign_dict()
    del data["multiplier"]
    assert RuleSet.from_dict({"campaigns": [data]}).campaigns[0].multiplier == 1


def test_action_defaults_to_unlimited_per_day():
    rules = RuleSet.from_dict({"actions": {"review": {"points": 5}}})
    assert rules.actions["review"] == ActionRule(points=5, limit=None, period="day")


def test_expiry_null_means_points_never_expire():
    assert RuleSet.from_dict({"expiry": None}).expiry.never


def test_expiry_partial_dict_fills_in_zeroes():
    assert RuleSet.from_dict({"expiry": {"days": 30}}).expiry == ExpiryPolicy(days=30)


INVALID_RULES = {
    "not a mapping": ["base_ratio", "1"],
    "float ratio": {"base_ratio": 1.5},
    "negative ratio": {"base_ratio": "-1"},
    "float category ratio": {"category_ratios": {"food": 2.0}},
    "negative sku ratio": {"sku_ratios": {"X": -2}},
    "empty category name": {"category_ratios": {"": "1"}},
    "blank sku name": {"sku_ratios": {"  ": "1"}},
    "too long category name": {"category_ratios": {"c" * 101: "1"}},
    "category ratios not a mapping": {"category_ratios": ["food"]},
    "unknown top-level key": {"base_ratoi": "1"},
    "unknown cap": {"caps": {"member_weekly": 10}},
    "negative cap": {"caps": {"member_daily": -1}},
    "float cap": {"caps": {"member_daily": 10.0}},
    "bool cap": {"caps": {"member_daily": True}},
    "caps not a mapping": {"caps": 5},
    "pending days negative": {"pending_days": -1},
    "pending days above a year": {"pending_days": 366},
    "pending days bool": {"pending_days": True},
    "unknown expiry key": {"expiry": {"weeks": 2}},
    "expiry months too large": {"expiry": {"months": 241}},
    "expiry days too large": {"expiry": {"days": 36501}},
    "expiry month_end not a bool": {"expiry": {"months": 1, "month_end": "yes"}},
    "expiry not a mapping": {"expiry": 3},
    "action with points 0": {"actions": {"signup": {"points": 0}}},
    "action with negative points": {"actions": {"signup": {"points": -5}}},
    "action without points": {"actions": {"signup": {}}},
    "action with float points": {"actions": {"signup": {"points": 5.0}}},
    "action with bool points": {"actions": {"signup": {"points": True}}},
    "action with unknown period": {"actions": {"signup": {"points": 5, "period": "hour"}}},
    "action with negative limit": {"actions": {"signup": {"points": 5, "limit": -1}}},
    "action with unknown key": {"actions": {"signup": {"points": 5, "limt": 1}}},
    "action not a mapping": {"actions": {"signup": 5}},
    "actions not a mapping": {"actions": ["signup"]},
    "empty action name": {"actions": {"": {"points": 5}}},
    "campaigns not a list": {"campaigns": {"name": "x"}},
    "campaign not a mapping": {"campaigns": ["spring"]},
    "campaign without name": {"campaigns": [campaign_dict(name=None)]},
    "campaign ending before it starts": {
        "campaigns": [campaign_dict(ends_at="2026-02-01T00:00:00+00:00")]
    },
    "campaign ending when it starts": {
        "campaigns": [campaign_dict(ends_at="2026-03-01T00:00:00+00:00")]
    },
    "campaign with a naive start": {"campaigns": [campaign_dict(starts_at="2026-03-01T00:00:00")]},
    "campaign with a date-only end": {"campaigns": [campaign_dict(ends_at="2026-04-01")]},
    "campaign with a naive datetime object": {
        "campaigns": [campaign_dict(starts_at=dt.datetime(2026, 3, 1))]
    },
    "campaign with a non-ISO date": {"campaigns": [campaign_dict(starts_at="next monday")]},
    "campaign without start": {"campaigns": [campaign_dict(starts_at=None)]},
    "campaign with float multiplier": {"campaigns": [campaign_dict(multiplier=2.0)]},
    "campaign with negative multiplier": {"campaigns": [campaign_dict(multiplier="-2")]},
    "campaign with weekday 7": {"campaigns": [campaign_dict(weekdays=[7])]},
    "campaign with weekday names": {"campaigns": [campaign_dict(weekdays=["sat"])]},
    "campaign with bool weekday": {"campaigns": [campaign_dict(weekdays=[True])]},
    "campaign weekdays not a list": {"campaigns": [campaign_dict(weekdays=5)]},
    "campaign categories not a list": {"campaigns": [campaign_dict(categories="drinks")]},
    "campaign with empty category": {"campaigns": [campaign_dict(categories=[""])]},
    "campaign with unknown key": {"campaigns": [campaign_dict(multipler="2")]},
}


@pytest.mark.parametrize("data", INVALID_RULES.values(), ids=INVALID_RULES.keys())
def test_invalid_rules_raise_invalid_rule(data):
    with pytest.raises(InvalidRule):
        RuleSet.from_dict(data)


def test_invalid_rule_is_an_invalid_input():
    assert issubclass(InvalidRule, InvalidInput)


def test_unknown_keys_are_named_in_the_message():
    with pytest.raises(InvalidRule, match="unknown rule settings: a, b"):
        RuleSet.from_dict({"b": 1, "a": 2})
    with pytest.raises(InvalidRule, match="unknown caps: member_weekly"):
        RuleSet.from_dict({"caps": {"member_weekly": 1}})


def test_naive_campaign_datetime_message_is_kept():
    with pytest.raises(InvalidRule, match="has no time zone"):
        RuleSet.from_dict({"campaigns": [campaign_dict(starts_at="2026-03-01T00:00:00")]})


def test_boundary_values_are_accepted():
    rules = RuleSet.from_dict(
        {
            "pending_days": 365,
            "expiry": {"months": 240, "days": 36500},
            "caps": {"member_daily": 0},
            "actions": {"a": {"points": 1, "limit": 0, "period": "week"}},
            "campaigns": [campaign_dict(weekdays=[0, 6], multiplier=0)],
        }
    )
    assert rules.pending_days == 365
    assert rules.caps.member_daily == 0


# Hypothesis: valid rule dicts round-trip

names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
)
ratio_texts = st.decimals(
    min_value=0, max_value=10_000, places=3, allow_nan=False, allow_infinity=False
).map(str)
ratios = st.one_of(ratio_texts, st.integers(min_value=0, max_value=1000))
optional_counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))
instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [dt.UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-12))]
    ),
)


@st.composite
def campaign_dicts(draw):
    starts = draw(instants)
    length = draw(st.timedeltas(min_value=dt.timedelta(seconds=1), max_value=dt.timedelta(1000)))
    data = {
        "name": draw(names),
        "multiplier": draw(ratios),
        "starts_at": starts.isoformat(),
        "ends_at": (starts + length).isoformat(),
    }
    if draw(st.booleans()):
        data["categories"] = draw(st.lists(names, max_size=3))
    if draw(st.booleans()):
        data["weekdays"] = draw(st.lists(st.integers(0, 6), max_size=7))
    return data


rule_dicts = st.fixed_dictionaries(
    {},
    optional={
        "base_ratio": ratios,
        "category_ratios": st.dictionaries(names, ratios, max_size=3),
        "sku_ratios": st.dictionaries(names, ratios, max_size=3),
        "campaigns": st.lists(campaign_dicts(), max_size=3),
        "actions": st.dictionaries(
            names,
            st.fixed_dictionaries(
                {"points": st.integers(min_value=1, max_value=10**6)},
                optional={
                    "limit": optional_counts,
                    "period": st.sampled_from(["day", "week", "month", "year", "lifetime"]),
                },
            ),
            max_size=3,
        ),
        "caps": st.fixed_dictionaries(
            {},
            optional={
                "member_daily": optional_counts,
                "member_monthly": optional_counts,
                "member_yearly": optional_counts,
                "program_daily": optional_counts,
            },
        ),
        "pending_days": st.integers(min_value=0, max_value=365),
        "expiry": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "months": st.integers(0, 240),
                    "days": st.integers(0, 36500),
                    "month_end": st.booleans(),
                },
            ),
        ),
    },
)


@settings(max_examples=150, deadline=None)
@given(data=rule_dicts)
def test_valid_rule_dicts_round_trip_through_to_dict(data):
    rules = RuleSet.from_dict(data)
    stored = rules.to_dict()
    assert RuleSet.from_dict(stored) == rules
    assert RuleSet.from_dict(stored).to_dict() == stored


@settings(max_examples=100, deadline=None)
@given(data=rule_dicts)
def test_parsed_ratios_equal_the_decimal_values_given(data):
    rules = RuleSet.from_dict(data)
    if "base_ratio" in data:
        assert rules.base_ratio == Fraction(str(data["base_ratio"]))
    for name, text in data.get("category_ratios", {}).items():
        assert rules.category_ratios[name] == Fraction(str(text))


# ratio_for

RATIOS = RuleSet(
    base_ratio=Fraction(1),
    category_ratios={"drinks": Fraction(2)},
    sku_ratios={"LATTE": Fraction(5)},
)


@pytest.mark.parametrize(
    ("sku", "category", "expected"),
    [
        ("LATTE", "drinks", 5),  # SKU beats category
        ("LATTE", None, 5),
        ("LATTE", "books", 5),
        ("TEA", "drinks", 2),  # unknown SKU falls back to the category
        (None, "drinks", 2),
        ("TEA", "books", 1),  # neither: base
        (None, None, 1),
    ],
)
def test_ratio_for_prefers_sku_then_category_then_base(sku, category, expected):
    assert RATIOS.ratio_for(sku, category) == expected


def test_a_zero_sku_ratio_still_wins_over_the_category():
    rules = RuleSet(category_ratios={"drinks": Fraction(2)}, sku_ratios={"GIFT": Fraction(0)})
    assert rules.ratio_for("GIFT", "drinks") == 0


# multiplier_for


def make_campaign(multiplier, **kwargs):
    defaults = {"name": f"x{multiplier}", "starts_at": utc(2026, 3, 1), "ends_at": utc(2026, 4, 1)}
    defaults.update(kwargs)
    return Campaign(multiplier=Fraction(multiplier), **defaults)


IN_MARCH = utc(2026, 3, 10, 12)


def test_no_campaigns_means_multiplier_one():
    assert RuleSet().multiplier_for(IN_MARCH, "UTC", None) == 1


def test_the_highest_active_campaign_wins_and_campaigns_do_not_stack():
    rules = RuleSet(campaigns=(make_campaign(2), make_campaign(3), make_campaign("1.5")))
    assert rules.multiplier_for(IN_MARCH, "UTC", None) == 3


def test_inactive_campaigns_are_ignored_even_if_higher():
    later = make_campaign(10, starts_at=utc(2026, 4, 1), ends_at=utc(2026, 5, 1))
    rules = RuleSet(campaigns=(make_campaign(2), later))
    assert rules.multiplier_for(IN_MARCH, "UTC", None) == 2


def test_campaign_start_is_inclusive_and_end_is_exclusive():
    rules = RuleSet(campaigns=(make_campaign(2),))
    assert rules.multiplier_for(utc(2026, 3, 1), "UTC", None) == 2
    assert rules.multiplier_for(utc(2026, 3, 1) - dt.timedelta(microseconds=1), "UTC", None) == 1
    assert rules.multiplier_for(utc(2026, 4, 1) - dt.timedelta(microseconds=1), "UTC", None) == 2
    assert rules.multiplier_for(utc(2026, 4, 1), "UTC", None) == 1


def test_category_campaign_applies_only_to_its_categories():
    rules = RuleSet(campaigns=(make_campaign(2, categories=frozenset({"drinks"})),))
    assert rules.multiplier_for(IN_MARCH, "UTC", "drinks") == 2
    assert rules.multiplier_for(IN_MARCH, "UTC", "books") == 1
    assert rules.multiplier_for(IN_MARCH, "UTC", None) == 1


def test_weekday_filter_uses_the_program_time_zone():
    # Friday 2026-03-13 17:00 UTC is Saturday 01:00 in Shanghai but Friday 18:00 in Berlin.
    weekend = make_campaign(2, weekdays=frozenset({5, 6}))
    rules = RuleSet(campaigns=(weekend,))
    friday_evening_utc = utc(2026, 3, 13, 17)
    assert rules.multiplier_for(friday_evening_utc, "Asia/Shanghai", None) == 2
    assert rules.multiplier_for(friday_evening_utc, "Europe/Berlin", None) == 1
    assert rules.multiplier_for(friday_evening_utc, "UTC", None) == 1


def test_weekday_filter_in_a_zone_behind_utc():
    # Monday 2026-03-16 05:00 UTC is still Sunday in UTC-12.
    sunday_only = make_campaign(4, weekdays=frozenset({6}))
    rules = RuleSet(campaigns=(sunday_only,))
    assert rules.multiplier_for(utc(2026, 3, 16, 5), "Etc/GMT+12", None) == 4
    assert rules.multiplier_for(utc(2026, 3, 16, 5), "UTC", None) == 1


def test_a_campaign_below_one_lowers_earning_when_it_is_the_only_active_one():
    # Documented behaviour: the highest *active* multiplier wins, even if it is below 1.
    rules = RuleSet(campaigns=(make_campaign("0.5"),))
    assert rules.multiplier_for(IN_MARCH, "UTC", None) == Fraction(1, 2)


def test_campaign_parsed_from_dict_filters_weekdays_in_program_zone():
    rules = RuleSet.from_dict({"campaigns": [campaign_dict(weekdays=[5, 6])]})
    assert rules.multiplier_for(utc(2026, 3, 13, 17), "Asia/Shanghai", None) == 2
    assert rules.multiplier_for(utc(2026, 3, 13, 17), "UTC", None) == 1
