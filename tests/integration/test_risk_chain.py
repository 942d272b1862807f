"""Risk control's transfer chains rule on SQLite and PostgreSQL (A → B → C: points laundered
through a mule account).

A member who passes on most of what ten senders gave them opens one case, theirs, with the
transfers in and out as its evidence; a member who receives and keeps, one who passes on too
small a share or too few points (or gives away their own after a small gift), and one who
passes on only after the window open nothing; a dismissed case stays dismissed on a rescan;
a ``hold`` rule keeps the mule's new points pending. The console's editor publishes a chain
rule in English and in Chinese, and the case page says the chain in both languages. The
ledger stays clean throughout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from tests.integration.helpers import PROGRAM, earn, enrol, local, make_program, row_counts
from tests.integration.test_admin_risk import editor_fields, page_text, plain, previewed, signed_in
from tests.integration.test_admin_support import build_app, post

SENDERS = [f"a{i}" for i in range(10)]


def rules(**chain: Any) -> dict[str, Any]:
    return {"rules": [{"id": "mule-chain", "kind": "transfer_chain", **chain}]}


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


def send(db: Database, sender: str, recipient: str, points: int, transfer_id: str) -> None:
    s.transfer_points(
        db,
        program=PROGRAM,
        sender=sender,
        recipient=recipient,
        points=points,
        transfer_id=transfer_id,
    )


def fund(db: Database, *members: str, points: int = 1_000) -> None:
    for member in members:
        earn(db, member, f"fund-{member}", points * 100)  # 1 point a yuan


def chain_of_ten(db: Database, clock: FixedClock, mule: str = "mule", to: str = "carol") -> None:
    """Ten senders give ``mule`` 500 points each; 5 minutes after each, ``mule`` passes 450 on
    to ``to`` (4,500 of 5,000: 90 %)."""
    for i, sender in enumerate(SENDERS):
        clock.advance(dt.timedelta(minutes=10))
        send(db, sender, mule, 500, f"in-{mule}-{i}")
        clock.advance(dt.timedelta(minutes=5))
        send(db, mule, to, 450, f"out-{mule}-{i}")


@pytest.fixture
def program(db: Database) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, *SENDERS, "mule", "carol", "dave", "erin", "frank", "gina")
    fund(db, *SENDERS)


def test_a_chain_of_ten_forwarded_transfers_opens_one_case_for_the_middle_member(
    db: Database, clock: FixedClock, program: None
) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=rules())
    chain_of_ten(db, clock)
    result = s.scan_risk(db)
    assert (result.trips, result.opened, result.held) == (1, 1, 0)
    [case] = s.list_risk_cases(db, program=PROGRAM).items
    assert (case.rule_id, case.member, case.action) == ("mule-chain", "mule", "flag")
    assert case.subject.startswith("member:")
    assert case.figures == {
        "received": 5_000,
        "transfers_in": 10,
        "senders": 10,
        "passed_on": 4_500,
        "sent": 4_500,
        "transfers_out": 10,
        "recipients": 1,
        "passed_on_percent": 90,
    }
    assert case.summary == (
        "passed on 4,500 of 5,000 points received by transfer (90 %) within 24 hours, at least 80 %"
    )
    detail = s.risk_case(db, program=PROGRAM, case_id=case.id)
    assert len(detail.evidence) == 20
    ins = [e for e in detail.evidence if e["recipient"] == "mule"]
    outs = [e for e in detail.evidence if e["sender"] == "mule"]
    assert sorted(e["sender"] for e in ins) == sorted(SENDERS)
    assert {(e["recipient"], e["points"]) for e in outs} == {("carol", 450)}
    assert {e["kind"] for e in detail.evidence} == {"transfer"}
    assert [e["at"] for e in detail.evidence] == sorted(
        (e["at"] for e in detail.evidence), reverse=True
    )
    assert s.scan_risk(db).opened == 0  # the same activity opens nothing new
    assert_clean(db)


def test_receiving_and_keeping_or_passing_on_too_little_opens_nothing(
    db: Database, clock: FixedClock, program: None
) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=rules(share_percent=80, min_points=1_000))
    for i, sender in enumerate(SENDERS[:4]):  # dave keeps all 2,000 he gets
        clock.advance(dt.timedelta(minutes=10))
        send(db, sender, "dave", 500, f"keep-{i}")
    clock.advance(dt.timedelta(minutes=10))
    send(db, SENDERS[4], "erin", 500, "erin-in")
    send(db, "erin", "carol", 500, "erin-out")  # 100 % on, but only 500 points
    for i, sender in enumerate(SENDERS[5:9]):  # frank gets 2,000 and passes on 1,500 (75 %)
        clock.advance(dt.timedelta(minutes=10))
        send(db, sender, "frank", 500, f"frank-in-{i}")
    send(db, "frank", "carol", 1_500, "frank-out")
    send(db, "carol", "dave", 100, "carol-out")  # carol passes on 100 of 2,000 (5 %)
    fund(db, "gina", points=3_000)
    send(db, SENDERS[9], "gina", 20, "gina-in")  # gina is given 20 points,
    send(db, "gina", "carol", 2_000, "gina-out")  # then gives away 2,000 of her own
    result = s.scan_risk(db)
    assert (result.trips, result.opened) == (0, 0)
    assert s.list_risk_cases(db, program=PROGRAM).total == 0
    assert_clean(db)


def test_passing_on_after_the_window_or_before_receiving_opens_nothing(
    db: Database, clock: FixedClock, program: None
) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=rules(hours=24))
    fund(db, "mule", points=3_000)
    send(db, "mule", "carol", 2_000, "before")  # sent before anything came in
    clock.advance(dt.timedelta(minutes=5))
    send(db, SENDERS[0], "mule", 1_000, "in-1")
    send(db, SENDERS[1], "mule", 1_000, "in-2")
    assert s.scan_risk(db).trips == 0
    clock.advance(dt.timedelta(hours=24, minutes=1))
    send(db, "mule", "carol", 2_000, "late")  # passed on a minute after the window
    assert s.scan_risk(db).trips == 0
    assert s.list_risk_cases(db, program=PROGRAM).total == 0
    assert_clean(db)


def test_a_dismissed_chain_case_stays_dismissed_on_a_rescan(
    db: Database, clock: FixedClock, program: None
) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=rules())
    chain_of_ten(db, clock)
    assert s.scan_risk(db).opened == 1
    [case] = s.list_risk_cases(db, program=PROGRAM).items
    s.resolve_risk_case(
        db, program=PROGRAM, case_id=case.id, outcome="dismiss", note="shop staff", actor="ops"
    )
    clock.advance(dt.timedelta(minutes=1))
    before = row_counts(db)
    again = s.scan_risk(db)
    assert (again.trips, again.opened, again.reopened, again.updated) == (1, 0, 0, 0)
    assert row_counts(db) == before
    assert s.list_risk_cases(db, program=PROGRAM).total == 0
    assert s.list_risk_cases(db, program=PROGRAM, status="dismissed").total == 1
    assert_clean(db)


def test_a_hold_chain_rule_keeps_the_middle_members_new_points_pending(
    db: Database, clock: FixedClock, program: None
) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=rules(action="hold"))
    chain_of_ten(db, clock)
    result = s.scan_risk(db)
    assert (result.opened, result.held) == (1, 1)
    [case] = s.list_risk_cases(db, program=PROGRAM).items
    assert (case.member, case.action, case.member_on_hold) == ("mule", "hold", True)
    fund(db, "dave")
    send(db, "dave", "mule", 300, "after-in")  # comes in held
    held = earn(db, "mule", "after-earn", 10_000)
    assert (held.status, held.matures_at) == ("pending", None)
    assert earn(db, "carol", "carol-earn", 10_000).status == "available"
    balance = s.balance(db, program=PROGRAM, member="mule")
    assert (balance.available, balance.pending) == (500, 400)
    assert_clean(db)
    done = s.resolve_risk_case(
        db, program=PROGRAM, case_id=case.id, outcome="release", note="checked", actor="ops"
    )
    assert done.member_on_hold is False
    balance = s.balance(db, program=PROGRAM, member="mule")
    assert (balance.available, balance.pending) == (900, 0)
    assert_clean(db)


# --- the console -----------------------------------------------------------------------------


@pytest.fixture
def app(db: Database, clock: FixedClock) -> Iterator[Flask]:
    clock.set(local(2026, 3, 1, 10))
    app = build_app(db)
    s.update_program(db, program=PROGRAM, transfers_enabled=True)
    enrol(db, *SENDERS, "mule", "carol")
    fund(db, *SENDERS)
    yield app


CHAIN_FIELDS = {
    "transfer_chain.id": ["mule-chain"],
    "transfer_chain.action": ["hold"],
    "transfer_chain.share_percent": ["90"],
    "transfer_chain.hours": ["12"],
    "transfer_chain.min_points": ["2,000"],
}


@pytest.mark.parametrize(
    ("lang", "sentence", "title", "label"),
    [
        (
            "en",
            "A member passing 90 % or more of the points they received by transfer on to other "
            "members within 12 hours (at least 2,000 points): open a case and keep the member's "
            "new points pending until released.",
            "Transfer chains",
            "passed on, at least %",
        ),
        (
            "zh",
            "会员将收到的转赠积分在 12 小时内转赠给其他会员达 90% 或以上（至少 2,000 积分）："
            "开立案件并冻结新积分直至人工放行。",
            "转赠链",
            "转出比例至少（%）",
        ),
    ],
)
def test_the_editor_publishes_a_chain_rule(
    app: Flask, db: Database, lang: str, sentence: str, title: str, label: str
) -> None:
    client, token = signed_in(app, "admin")
    page = page_text(client, f"/admin/risk/rules?lang={lang}")
    assert title in page and label in page  # the kind's table, with its columns
    fields = editor_fields({"rules": []}, **CHAIN_FIELDS)
    preview = post(client, "/admin/risk/rules/draft", token, **fields)
    assert preview.status_code == 200
    shown = plain(preview.get_data(as_text=True))
    assert sentence in shown
    publish = {**fields, "action": "publish", "previewed": previewed(preview)}
    done = post(client, "/admin/risk/rules/draft", token, **publish)
    assert done.status_code == 302
    info = s.risk_rules(db, program=PROGRAM)
    assert info is not None and info.rules == rules(
        action="hold", share_percent=90, hours=12, min_points=2_000
    )
    assert sentence in page_text(client, "/admin/risk/rules")


@pytest.mark.parametrize(
    ("lang", "field", "problem"),
    [
        ("en", "share_percent", "Transfer chains, row 1 'mule-chain': 'share_percent' must be a "
         "whole number from 1 to 100"),
        ("zh", "share_percent", "转赠链，第 1 行 'mule-chain'"),
    ],
)  # fmt: skip
def test_a_bad_chain_rule_is_refused_in_the_editor(
    app: Flask, db: Database, lang: str, field: str, problem: str
) -> None:
    client, token = signed_in(app, "admin")
    client.get(f"/admin/risk/rules?lang={lang}")
    before = row_counts(db)
    bad = {**CHAIN_FIELDS, f"transfer_chain.{field}": ["101"]}
    refused = post(client, "/admin/risk/rules/draft", token, **editor_fields({"rules": []}, **bad))
    assert refused.status_code == 400
    assert problem in plain(refused.get_data(as_text=True))
    assert row_counts(db) == before


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "en",
            [
                "passed on 4,500 of 5,000 points received by transfer (90 %) within 24 hours, "
                "at least 80 %",
                "received 5,000",
                "passed on percent 90",
                "passed on to carol",
                "from a9",
            ],
        ),
        (
            "zh",
            [
                "24 小时内将收到的 5,000 转赠积分中的 4,500 转出（90%），不低于 80%",
                "收到的转赠积分 5,000",
                "转出比例（%） 90",
                "转赠给 carol",
            ],
        ),
    ],
)
def test_the_case_page_says_the_chain_in_both_languages(
    app: Flask, db: Database, clock: FixedClock, lang: str, words: list[str]
) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=rules())
    chain_of_ten(db, clock)
    s.scan_risk(db)
    [case] = s.list_risk_cases(db, program=PROGRAM).items
    client, _ = signed_in(app, "operations")
    page = page_text(client, f"/admin/risk/case?id={case.id}&lang={lang}")
    for said in words:
        assert said in page, said
