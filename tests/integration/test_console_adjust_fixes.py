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
from flask.testing import FlaskClient

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.checks import MAX_POINTS
from loyalty.errors import ApprovalRequired, InsufficientPoints, InvalidAmount, MemberInactive
from loyalty.services.approvals import AdjustmentRequestInfo, adjust_within_threshold
from tests.integration.helpers import PROGRAM, earn, row_counts
from tests.integration.test_admin_support import build_app, login, post

# The console's pages (flashes, buttons, the 403 page) do not depend on the database: they
# run on SQLite only; the checks of the service run on both.
on_sqlite = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


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


def test_the_console_refuses_at_once_in_red_with_separators(app: Flask, db: Database) -> None:
    earn(db, "alice", "o1", 262_100)
    ops = app.test_client()
    token = login(ops, "operations")
    post(ops, "/admin/adjustments/new", token, member="alice", points=-5000, reason="too much")
    page = ops.get("/admin/adjustments/").get_data(as_text=True)
    [(colour, text)] = alerts(page)
    assert colour == "danger" and "2,621" in text and "5,000" in text
    assert s.list_adjustment_requests(db, program=PROGRAM) == []
    assert 'data-testid="pending"' in page and "Nothing waits for approval." in page


@on_sqlite
def test_the_form_gives_its_bounds_with_separators(app: Flask) -> None:
    ops = app.test_client()
    token = login(ops, "operations")
    post(ops, "/admin/adjustments/new", token, member="alice", points=10**13, reason="typo")
    [(colour, text)] = alerts(ops.get("/admin/adjustments/").get_data(as_text=True))
    assert colour == "danger"
    assert "from -1,000,000,000,000 to 1,000,000,000,000" in text


def test_the_api_threshold_message_separates_thousands(db: Database) -> None:
    build_app(db)
    with pytest.raises(ApprovalRequired, match="above 1,000 points"):
        adjust_within_threshold(
            db,
            program=PROGRAM,
            member="alice",
            points=5_000,
            reason="goodwill",
            adjustment_id="api-1",
            actor="api key",
            threshold=1_000,
        )


@on_sqlite
def test_flashes_take_the_colour_of_their_kind(app: Flask, db: Database) -> None:
    """Applied is green, waiting for a second person blue, withdrawn blue, refused red."""
    ops, ops2 = app.test_client(), app.test_client()
    token, token2 = login(ops, "operations"), login(ops2, "operations2")
    post(ops, "/admin/adjustments/new", token, member="alice", points=100, reason="goodwill")
    [(colour, text)] = alerts(ops.get("/admin/adjustments/").get_data(as_text=True))
    assert colour == "success" and "+100 points" in text
    post(ops, "/admin/adjustments/new", token, member="alice", points=1_500, reason="big one")
    [(colour, text)] = alerts(ops.get("/admin/adjustments/").get_data(as_text=True))
    assert colour == "info" and "waits for a second person" in text and "(500)" in text
    [pending] = s.list_adjustment_requests(db, program=PROGRAM, status="pending")
    post(ops2, "/admin/adjustments/approve", token2, request_id=pending.id)
    [(colour, text)] = alerts(ops2.get("/admin/adjustments/").get_data(as_text=True))
    assert colour == "success" and "+1,500 points" in text
    post(ops, "/admin/adjustments/new", token, member="alice", points=-900, reason="oops")
    [mine] = s.list_adjustment_requests(db, program=PROGRAM, status="pending")
    ops.get("/admin/adjustments/")  # the waiting flash
    post(ops, "/admin/adjustments/reject", token, request_id=mine.id)
    [(colour, text)] = alerts(ops.get("/admin/adjustments/").get_data(as_text=True))
    assert colour == "info" and "-900 points withdrawn" in text


@on_sqlite
def test_the_queue_buttons_are_styled_as_actions(app: Flask, db: Database) -> None:
    ops, ops2 = app.test_client(), app.test_client()
    token = login(ops, "operations")
    login(ops2, "operations2")
    post(ops, "/admin/adjustments/new", token, member="alice", points=900, reason="big one")
    mine = ops.get("/admin/adjustments/").get_data(as_text=True)
    theirs = ops2.get("/admin/adjustments/").get_data(as_text=True)
    assert re.search(r'class="btn btn-sm btn-outline-danger"[^>]*>Withdraw<', mine)
    assert re.search(r'class="btn btn-sm btn-outline-danger"[^>]*>Reject<', theirs)
    assert re.search(r'class="btn btn-sm btn-success"[^>]*>Approve<', theirs)
    assert "btn-outline-secondary" not in theirs


@on_sqlite
@pytest.mark.parametrize(
    ("user", "method", "path", "roles"),
    [
        ("viewer", "GET", "/admin/adjustments/", "operations or admin"),
        ("marketing", "POST", "/admin/adjustments/new", "operations or admin"),
        ("viewer", "POST", "/admin/rules/draft", "marketing or admin"),
        ("operations", "GET", "/admin/keys/", "admin"),
    ],
)
def test_a_403_is_a_console_page_naming_the_roles_and_who_is_signed_in(
    app: Flask, user: str, method: str, path: str, roles: str
) -> None:
    client: FlaskClient = app.test_client()
    token = login(client, user)
    if method == "GET":
        response = client.get(path, headers={"Referer": "http://localhost/admin/members/"})
    else:
        response = post(client, path, token, member="alice", points=5, reason="nope")
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "read-protected" not in page  # not Werkzeug's text
    assert 'data-testid="whoami"' in page  # the console's own layout, signed in
    needed = re.search(r'data-testid="roles-needed">(.*?)</p>', page, re.S)
    assert needed and roles in re.sub(r"<[^>]+>", "", needed.group(1))
    signed_in = re.search(r'data-testid="signed-in-as">(.*?)</p>', page, re.S)
    assert signed_in and user in re.sub(r"<[^>]+>", "", signed_in.group(1))
    back = re.search(r'data-testid="back" href="([^"]+)"', page)
    assert back and back.group(1) == ("/admin/members/" if method == "GET" else "/admin/")


@on_sqlite
def test_a_403_never_links_back_to_another_site(app: Flask) -> None:
    client = app.test_client()
    login(client, "viewer")
    response = client.get("/admin/adjustments/", headers={"Referer": "https://evil.example/x"})
    assert response.status_code == 403
    assert 'data-testid="back" href="/admin/"' in response.get_data(as_text=True)
