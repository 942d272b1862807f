"""The risk pages' words in both languages: a case's summary said again from its figures and
its rule is, in English, the risk job's own summary word for word, and in Chinese has no
English left; what a scan did reads as the ``jifen`` command says it in English; the
domain's refusals of a rule read in Chinese naming the editor's column, and as the domain
said them in English; a draft's changes name settings and choices in the page's language."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from admin.i18n import init_i18n
from admin.risk_form import changes, problem_words
from admin.risk_words import case_summaries, member_status_word, scan_words, summary_words
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.risk import RiskRule, RiskRules, parse_rule
from loyalty.errors import InvalidRule
from loyalty.services.risk_cases import RiskCaseInfo
from loyalty.services.risk_review import scan_words as cli_scan_words
from tests.integration.helpers import PROGRAM, earn, enrol, local, make_program

RULES = {
    "rules": [
        {"id": "burst", "kind": "velocity", "scope": "member", "measure": "earns", "limit": 2,
         "window": "hour", "action": "flag"},
        {"id": "till", "kind": "velocity", "scope": "location", "measure": "points",
         "limit": 500, "window": "day", "action": "flag"},
        {"id": "farming", "kind": "farming", "refunded_percent": 50, "action": "hold"},
        {"id": "ring", "kind": "transfer_ring", "senders": 3, "hours": 24, "action": "flag"},
        {"id": "inflow", "kind": "new_member_inflow", "points": 1_000, "days": 7,
         "action": "flag"},
        {"id": "spike", "kind": "issuance_spike", "window": "day", "trailing_days": 2,
         "threshold": 6, "min_points": 1_000, "action": "flag"},
    ]
}  # fmt: skip
_LATIN = re.compile(r"[A-Za-z]{2,}")


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    init_i18n(app)
    return app


@pytest.fixture
def cases(db: Database, clock: FixedClock) -> Iterator[list[RiskCaseInfo]]:
    """One case of each rule kind (and both velocity windows and measures)."""
    clock.set(local(2026, 3, 1, 10))
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob", "s1", "s2", "s3")
    s.publish_risk_rules(db, program=PROGRAM, rules=RULES)
    for i in range(3):
        earn(db, "alice", f"a{i}", 100_000, location="store-1")
    earn(db, "bob", "b1", 10_000)
    s.refund_order(
        db, program=PROGRAM, order_id="b1", refund_id="rb1", amount_minor=10_000,
        currency="CNY", succeeded=True,
    )  # fmt: skip
    for sender in ("s1", "s2", "s3"):
        earn(db, sender, f"o-{sender}", 10_000)
        s.transfer_points(
            db, program=PROGRAM, sender=sender, recipient="bob", points=10, transfer_id=sender
        )
    s.scan_risk(db, program=PROGRAM)
    yield list(s.list_risk_cases(db, program=PROGRAM, limit=50).items)


def _rule(rule_id: str) -> RiskRule:
    found = RiskRules.from_dict(RULES).get(rule_id)
    assert found is not None
    return found


def test_a_summary_in_english_is_the_risk_jobs_own(app: Flask, cases: list[RiskCaseInfo]) -> None:
    assert {c.rule_id for c in cases} == {r["id"] for r in RULES["rules"]}
    with app.test_request_context("/?lang=en"):
        for case in cases:
            assert summary_words(_rule(case.rule_id), case.figures) == case.summary


def test_a_summary_in_chinese_keeps_the_figures_and_no_english(
    app: Flask, db: Database, cases: list[RiskCaseInfo]
) -> None:
    with app.test_request_context("/?lang=zh"):
        said = case_summaries(db, PROGRAM, cases)
    by_rule = {c.rule_id: said[c.id] for c in cases}
    for rule_id, text in by_rule.items():
        assert not _LATIN.search(text), (rule_id, text)
    assert by_rule["burst"] == "1 小时内积分获取 3 笔，超过上限 2"
    assert by_rule["till"] == "1 天内获得 3,000 积分，超过上限 500"
    assert by_rule["farming"] == "近 30 天获得的 100 积分中 100% 已退款（1 笔退款），超过 50%"
    assert by_rule["ring"] == "24 小时内有 3 位会员转入 30 积分"
    assert by_rule["inflow"].startswith("注册后 7 天内收到 3,000 积分，超过 1,000")
    assert by_rule["spike"].startswith("最近 1 天发放 3,")


def test_what_a_scan_did_reads_as_the_command_says_it(app: Flask) -> None:
    details = {"rules": 6, "opened": 4, "updated": 1, "reopened": 0, "held": 1}
    with app.test_request_context("/?lang=en"):
        assert scan_words(details, 5) == cli_scan_words(details, 5)
        assert scan_words({"rules": 1}, 0).startswith("1 rule evaluated")
    with app.test_request_context("/?lang=zh"):
        assert scan_words(details, 5) == (
            "评估了 6 条规则，5 次超出限制；案件新开 4 个、追加 1 个、重新打开 0 个；1 位会员被暂扣"
        )


def _refusal(item: dict[str, object]) -> str:
    with pytest.raises(InvalidRule) as refused:
        parse_rule(item, 0)
    return refused.value.message.removeprefix("risk rule 1").lstrip(": ")


@pytest.mark.parametrize(
    ("item", "chinese"),
    [
        ({"id": "Bad Id", "kind": "farming", "refunded_percent": 5}, "ID 必须是 1 到 64 个"),
        ({"id": "x", "kind": "velocity", "limit": 0}, "“超过”必须是 1 到 1,000,000,000,000"),
        ({"id": "x", "kind": "velocity"}, "频次限制需要填写“超过”"),
        ({"id": "x", "kind": "velocity", "limit": 5, "scope": "location", "action": "hold"},
         "暂扣会让会员的新积分保持待生效"),
        ({"id": "x", "kind": "farming", "refunded_percent": 5, "action": "block"},
         "只有频次限制和新会员积分涌入规则可以拦截"),
        ({"id": "x", "kind": "velocity", "limit": 5, "window": "week"},
         "“时间范围”必须是以下之一：hour, day"),
    ],
)  # fmt: skip
def test_a_refusal_of_the_domain_reads_in_chinese_and_as_it_was_in_english(
    app: Flask, item: dict[str, object], chinese: str
) -> None:
    said = _refusal(item)
    kind = str(item["kind"])
    with app.test_request_context("/?lang=en"):
        assert problem_words(said, kind) == said
    with app.test_request_context("/?lang=zh"):
        assert problem_words(said, kind).startswith(chinese)


def test_a_drafts_changes_name_settings_in_the_pages_language(app: Flask) -> None:
    before = {"rules": [RULES["rules"][0], RULES["rules"][2]]}
    after = {"rules": [{**RULES["rules"][0], "limit": 4, "window": "day"}, RULES["rules"][3]]}
    with app.test_request_context("/?lang=en"):
        assert changes(before, after) == [
            "adds ring (transfer_ring, flag)",
            "removes farming",
            "changes burst: limit 2 → 4, window hour → day",
        ]
    with app.test_request_context("/?lang=zh"):
        assert changes(before, after) == [
            "新增 ring（转赠团伙，标记）",
            "删除 farming",
            "修改 burst：超过：2 → 4、时间范围：每小时 → 每天",
        ]


def test_an_account_state_is_its_code_in_english_and_its_meaning_in_chinese(app: Flask) -> None:
    with app.test_request_context("/?lang=en"):
        assert [member_status_word(c) for c in ("active", "suspended")] == ["active", "suspended"]
    with app.test_request_context("/?lang=zh"):
        assert [member_status_word(c) for c in ("active", "suspended")] == ["正常", "已冻结"]
        assert member_status_word("new_state") == "new_state"
