"""The transfer chains rule (A → B → C forwarding) as plain data: its defaults, the bounds of
its settings with the domain's clear refusals, the actions it may take (the risk job
evaluates it, so it cannot block), and its sentence in English and in Chinese."""

from __future__ import annotations

import re
from typing import Any

import pytest

from loyalty.domain.risk import KINDS, TYPICAL_RULES, RiskRules, parse_rule
from loyalty.errors import InvalidRule


def chain(**settings: Any) -> dict[str, Any]:
    return {"id": "mule", "kind": "transfer_chain", **settings}


def test_a_chain_rule_takes_its_defaults() -> None:
    rule = parse_rule(chain(), 0)
    assert rule.kind == "transfer_chain" and "transfer_chain" in KINDS
    assert (rule.action, dict(rule.params)) == (
        "flag",
        {"share_percent": 80, "hours": 24, "min_points": 1000},
    )
    assert rule.to_dict() == {
        "id": "mule", "kind": "transfer_chain", "action": "flag", "share_percent": 80,
        "hours": 24, "min_points": 1000,
    }  # fmt: skip
    assert RiskRules.from_dict({"rules": [rule.to_dict()]}).rules == (rule,)


def test_a_chain_rule_keeps_its_settings_and_may_hold() -> None:
    rule = parse_rule(chain(action="hold", share_percent=100, hours=744, min_points=1), 0)
    assert (rule["share_percent"], rule["hours"], rule["min_points"]) == (100, 744, 1)
    assert RiskRules((rule,)).windowed() == [rule]  # the risk job evaluates it
    assert RiskRules((rule,)).blocking("transfer_chain") == []


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"share_percent": 0}, "share_percent",
         "'share_percent' must be a whole number from 1 to 100"),
        ({"share_percent": 101}, "share_percent", "from 1 to 100"),
        ({"share_percent": 80.5}, "share_percent", "must be a whole number"),
        ({"share_percent": True}, "share_percent", "must be a whole number"),
        ({"hours": 0}, "hours", "'hours' must be a whole number from 1 to 744"),
        ({"hours": 745}, "hours", "from 1 to 744"),
        ({"hours": "24"}, "hours", "must be a whole number"),
        ({"min_points": 0}, "min_points", "'min_points' must be a whole number from 1 to"),
        ({"min_points": 10**13}, "min_points", "to 1,000,000,000,000"),
        ({"action": "block"}, "action", "only velocity and new_member_inflow rules can block"),
        ({"action": "freeze"}, "action", "'action' must be one of flag, hold, block"),
    ],
)  # fmt: skip
def test_a_bad_chain_rule_says_what_is_wrong(
    settings: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidRule) as refused:
        parse_rule(chain(**settings), 2)
    assert refused.value.message.startswith("risk rule 3: ")
    assert message in refused.value.message
    assert refused.value.details.get("field") == field


def test_an_unknown_setting_of_a_chain_rule_is_named() -> None:
    with pytest.raises(InvalidRule, match="unknown settings senders for transfer_chain"):
        parse_rule(chain(senders=5), 0)


def test_a_chain_rule_in_one_sentence_in_english_and_chinese() -> None:
    rule = parse_rule(chain(share_percent=90, hours=12, min_points=5_000), 0)
    assert rule.explain() == (
        "A member passing 90 % or more of the points they received by transfer on to other "
        "members within 12 hours (at least 5,000 points): open a case for review."
    )
    assert rule.explain_zh() == (
        "会员将收到的转赠积分在 12 小时内转赠给其他会员达 90% 或以上（至少 5,000 积分）："
        "开立风控案件待审核。"
    )
    held = parse_rule(chain(action="hold"), 0)
    assert held.explain().endswith(
        "(at least 1,000 points): open a case and keep the member's new points pending until "
        "released."
    )
    assert held.explain_zh().endswith("开立案件并冻结新积分直至人工放行。")
    assert not re.search(r"[A-Za-z]{2,}", held.explain_zh())


def test_the_typical_rule_set_is_unchanged() -> None:
    """Adding a chain rule to it would change what every new program starts from (and its
    six sentences); a program adds one in the editor."""
    assert "transfer_chain" not in {r["kind"] for r in TYPICAL_RULES["rules"]}
