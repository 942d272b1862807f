"""Adjustments are checked when they are asked for, not only when a second person approves
them: a deduction beyond the spendable points or a grant past what a member may hold is
refused at once with the amounts written with separators, writing nothing, and checked again
on approval. Flashes take the colour of their kind, and a 403 is a console page naming the
roles that may open it and who is signed in."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.checks import MAX_POINTS
from loyalty.errors import InsufficientPoints, InvalidAmount, MemberInactive
from loyalty.services.approvals import AdjustmentRequestInfo
from tests.integration.helpers import PROGRAM, earn, row_counts
from tests.integration.test_admin_support import build_app


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


def ask(db: Database, points: int, member: str = "alice", by: str = "ann") -> AdjustmentRequestInfo:
    return s.request_adjustment(
        db,
        program=PROGRAM,
        member=member,
        points=points,
        reason="checked at request time",
        requested_by=by,
        threshold=500,
    )


def alerts(page: str) -> list[tuple[str, str]]:
    """(bootstrap colour, text) of every flash on the page."""
    found = re.findall(r'class="alert alert-(\w+)[^"]*" role="alert">([^<]*)<', page)
    return [(colour, text.strip()) for colour, text in found]


def test_a_deduction_beyond_the_balance_is_refused_when_asked_for(app: Flask, db: Database) -> None:
    earn(db, "alice", "o1", 262_100)  # 2,621 points
    before = row_counts(db)
    with pytest.raises(InsufficientPoints) as refused:
        ask(db, -1_000_000)
    assert "2,621 points" in refused.value.message and "1,000,000" in refused.value.message
    assert "deduct at most 2,621 points" in refused.value.message
    assert row_counts(db) == before  # no request, no audit entry, no ledger write


def test_a_member_with_nothing_cannot_be_asked_a_deduction(app: Flask, db: Database) -> None:
    with pytest.raises(InsufficientPoints, match="nothing to deduct"):
        ask(db, -2_000, member="bob")
    assert s.list_adjustment_requests(db, program=PROGRAM) == []


def test_a_grant_past_what_a_member_may_hold_is_refused_when_asked_for(
    app: Flask, db: Database
) -> None:
    earn(db, "alice", "o1", 100_000)  # 1,000 points
    before = row_counts(db)
    with pytest.raises(InvalidAmount) as refused:
        ask(db, 999_999_999_999)
    message = refused.value.message
    assert "999,999,999,999" in message and "1,000,000,000,999" in message
    assert "Grant at most 999,999,999,000 points" in message
    assert row_counts(db) == before
    assert ask(db, MAX_POINTS - 1_000).status == "pending"  # up to the bound it may wait


def test_a_closed_member_is_refused_when_asked_for(app: Flask, db: Database) -> None:
    s.set_member_status(db, program=PROGRAM, external_id="bob", status="closed")
    with pytest.raises(MemberInactive, match="reopen"):
        ask(db, 100, member="bob")


def test_approval_checks_again_what_changed_since_the_request(app: Flask, db: Database) -> None:
    earn(db, "alice", "o1", 300_000)  # 3,000 points
    waiting = ask(db, -3_000)
    assert waiting.status == "pending"
    ask(db, -400, by="carl")  # applied at once: 2,600 left
    with pytest.raises(InsufficientPoints) as refused:
        s.approve_adjustment(db, program=PROGRAM, request_id=waiting.id, approver="ben")
    assert "2,600 points" in refused.value.message and "3,000" in refused.value.message
    failed = s.get_adjustment_request(db, program=PROGRAM, request_id=waiting.id)
    assert failed.status == "failed" and failed.error == refused.value.message
    assert s.balance(db, program=PROGRAM, member="alice").available == 2_600


def test_two_waiting_grants_cannot_both_pass_the_bound(app: Flask, db: Database) -> None:
    first, second = ask(db, 600_000_000_000), ask(db, 600_000_000_000)
    s.approve_adjustment(db, program=PROGRAM, request_id=first.id, approver="ben")
    with pytest.raises(InvalidAmount, match="Grant at most 400,000,000,000 points"):
        s.approve_adjustment(db, program=PROGRAM, request_id=second.id, approver="ben")
    assert s.balance(db, program=PROGRAM, member="alice").available == 600_000_000_000
