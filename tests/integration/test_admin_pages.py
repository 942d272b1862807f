"""The console's pages do their jobs through the services: adjustments with approval,
rules with preview and publish, members, events, jobs, the audit log and CSV exports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from admin.cli import users
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import AdjustmentRequestSettled, InsufficientPoints, SelfApproval
from loyalty.services.console_users import list_users
from tests.integration import stripe_support as st
from tests.integration.helpers import PROGRAM, earn
from tests.integration.test_admin_support import build_app, login, post


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


def _flash(client: FlaskClient, path: str) -> str:
    return client.get(path).get_data(as_text=True)


def test_small_adjustments_apply_at_once_and_large_ones_wait_for_a_second_person(
    app: Flask, db: Database
) -> None:
    ops, ops2 = app.test_client(), app.test_client()
    token = login(ops, "operations")
    token2 = login(ops2, "operations2")
    small = post(
        ops, "/admin/adjustments/new", token, member="alice", points=100, reason="goodwill"
    )
    assert small.status_code == 302
    assert s.balance(db, program=PROGRAM, member="alice").available == 100

    post(ops, "/admin/adjustments/new", token, member="alice", points=5000, reason="big gesture")
    assert s.balance(db, program=PROGRAM, member="alice").available == 100
    [pending] = s.list_adjustment_requests(db, program=PROGRAM, status="pending")
    assert pending.points == 5000 and pending.requested_by == "operations"
    page = _flash(ops, "/admin/adjustments/")
    assert "needs another person" in page

    post(ops, "/admin/adjustments/approve", token, request_id=pending.id)
    assert "cannot approve" in _flash(ops, "/admin/adjustments/")
    assert s.balance(db, program=PROGRAM, member="alice").available == 100

    post(ops2, "/admin/adjustments/approve", token2, request_id=pending.id)
    assert s.balance(db, program=PROGRAM, member="alice").available == 5100
    done = s.get_adjustment_request(db, program=PROGRAM, request_id=pending.id)
    assert (done.status, done.decided_by) == ("applied", "operations2")
    actions = [e.action for e in s.list_audit(db, action="adjustment.").items]
    assert actions[:3] == ["adjustment.applied", "adjustment.approve", "adjustment.request"]


def test_approval_service_refuses_the_requester_twice_and_settled_requests(db: Database) -> None:
    build_app(db)
    earn(db, "bob", "o-bob", 200_000)  # 2,000 points
    made = s.request_adjustment(
        db, program=PROGRAM, member="bob", points=-2000, reason="fraud", requested_by="ann"
    )
    assert made.status == "pending"
    with pytest.raises(SelfApproval):
        s.approve_adjustment(db, program=PROGRAM, request_id=made.id, approver="ann")
    s.request_adjustment(
        db, program=PROGRAM, member="bob", points=-500, reason="refund", requested_by="carl"
    )
    with pytest.raises(InsufficientPoints):  # bob has 1,500 left to deduct from
        s.approve_adjustment(db, program=PROGRAM, request_id=made.id, approver="ben")
    failed = s.get_adjustment_request(db, program=PROGRAM, request_id=made.id)
    assert failed.status == "failed" and failed.error
    with pytest.raises(AdjustmentRequestSettled):
        s.approve_adjustment(db, program=PROGRAM, request_id=made.id, approver="ben")
    other = s.request_adjustment(
        db, program=PROGRAM, member="bob", points=3000, reason="promo", requested_by="ann"
    )
    rejected = s.reject_adjustment(db, program=PROGRAM, request_id=other.id, rejecter="ben")
    assert rejected.status == "rejected"
    with pytest.raises(AdjustmentRequestSettled):
        s.approve_adjustment(db, program=PROGRAM, request_id=other.id, approver="ben")
    assert s.balance(db, program=PROGRAM, member="bob").available == 1500


def test_the_rules_preview_shows_both_sides_and_publish_needs_that_preview(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    client = app.test_client()
    token = login(client, "marketing")
    form = {
        "base_ratio": "2",
        "cat_name": ["grocery"],
        "cat_ratio": ["0.5"],
        "expiry_months": "3",
        "line_amount": ["100"],
    }
    preview = post(client, "/admin/rules/draft", token, action="preview", **form)
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert 'data-testid="preview-current">100 points' in text
    assert 'data-testid="preview-draft">200 points' in text
    digest = text.split('name="previewed" value="')[1].split('"')[0]

    changed = post(
        client,
        "/admin/rules/draft",
        token,
        action="publish",
        previewed=digest,
        **{**form, "base_ratio": "3"},
    )
    assert "changed since its preview" in changed.get_data(as_text=True)
    assert s.rules_in_force(db, program=PROGRAM)[0] == 1

    published = post(
        client, "/admin/rules/draft", token, action="publish", previewed=digest, **form
    )
    assert published.status_code == 302
    version, rules = s.rules_in_force(db, program=PROGRAM)
    assert version == 2 and rules.to_dict()["base_ratio"] == "2"
    [entry] = s.list_audit(db, action="rules.publish").items
    assert entry.actor == "marketing"
    assert entry.before and entry.before["base_ratio"] == "1"
    assert entry.after and entry.after["base_ratio"] == "2"


def test_rules_publish_later_and_bad_drafts_are_refused(app: Flask, db: Database) -> None:
    client = app.test_client()
    token = login(client, "marketing")
    later = (dt.datetime(2026, 12, 1, 0, 0)).strftime("%Y-%m-%dT%H:%M")
    form = {"base_ratio": "3", "effective_from": later}
    text = post(client, "/admin/rules/draft", token, action="preview", **form).get_data(
        as_text=True
    )
    digest = text.split('name="previewed" value="')[1].split('"')[0]
    post(client, "/admin/rules/draft", token, action="publish", previewed=digest, **form)
    assert s.rules_in_force(db, program=PROGRAM)[0] == 1  # not yet
    [*_, scheduled] = s.list_rule_versions(db, program=PROGRAM)
    assert scheduled.effective_from_at == dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)
    bad = post(client, "/admin/rules/draft", token, action="preview", base_ratio="-1")
    assert bad.status_code == 400 and "must not be negative" in bad.get_data(as_text=True)
    settings = post(
        client,
        "/admin/rules/settings",
        token,
        rounding="half_up",
        reminder_days=10,
        clearing_policy="none",
        clearing_month=12,
        clearing_day=31,
        clearing_keep_months=12,
    )
    assert settings.status_code == 302
    assert s.get_program(db, PROGRAM).rounding == "half_up"
    [entry] = s.list_audit(db, action="program.update").items
    assert entry.before == {"rounding": "floor", "reminder_days": 15}
    assert entry.after == {"rounding": "half_up", "reminder_days": 10}


def test_members_search_detail_history_and_stripe_link(app: Flask, db: Database) -> None:
    for n in range(25):
        earn(db, "alice", f"o-{n}", 1000)
    client = app.test_client()
    token = login(client, "operations")
    found = client.get("/admin/members/?q=alice")
    assert found.status_code == 302 and "member?id=alice" in found.headers["Location"]
    page = client.get("/admin/members/member?id=alice").get_data(as_text=True)
    assert 'data-testid="available">250' in page
    assert "Older" in page  # 25 operations, 20 per page
    assert client.get("/admin/members/member?id=nobody").status_code == 404

    event = st.payment_intent_succeeded("pi_link", 5000, customer="cus_bob")
    payload = st.body(event)
    client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": st.sign(payload)})
    post(client, "/admin/members/link-stripe", token, member="bob", stripe_customer_id="cus_bob")
    assert s.get_member(db, program=PROGRAM, external_id="bob").stripe_customer_id == "cus_bob"
    assert s.balance(db, program=PROGRAM, member="bob").available == 50  # parked event applied
    assert client.get("/admin/members/?q=cus_bob").status_code == 302
    assert s.list_audit(db, action="member.link_stripe").total == 1


def test_webhook_events_list_filter_and_replay(app: Flask, db: Database) -> None:
    client = app.test_client()
    token = login(client, "operations")
    event = st.payment_intent_succeeded("pi_replay", 3000, customer="cus_later")
    payload = st.body(event)
    client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": st.sign(payload)})
    listing = client.get("/admin/events/?status=parked").get_data(as_text=True)
    assert event["id"] in listing
    assert event["id"] not in client.get("/admin/events/?status=applied").get_data(as_text=True)
    assert client.get(f"/admin/events/event?id={event['id']}").status_code == 200
    s.link_stripe_customer(db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_later")
    post(client, "/admin/events/replay", token, event_id=[event["id"]])
    assert s.balance(db, program=PROGRAM, member="alice").available == 30
    assert "applied" in client.get("/admin/events/?status=applied").get_data(as_text=True)


def test_jobs_page_runs_a_sweep_inline_and_shows_the_forecast(app: Flask, db: Database) -> None:
    earn(db, "alice", "o-1", 10_000)
    client = app.test_client()
    token = login(client, "operations")
    assert post(client, "/admin/jobs/run", token, job="expire").status_code == 302
    page = client.get("/admin/jobs/?days=120").get_data(as_text=True)
    assert "expire ran" in page and "succeeded" in page and "<svg" in page
    assert "100</strong> points" in page  # alice's lot expires in 3 months


def test_dashboard_figures_and_charts(app: Flask, db: Database) -> None:
    earn(db, "alice", "o-1", 12_345)
    client = app.test_client()
    login(client, "viewer")
    page = client.get("/admin/").get_data(as_text=True)
    assert 'data-testid="outstanding">123<' in page
    assert 'data-testid="members-active">2<' in page
    assert page.count("<svg") == 2 and "<title>Points per day" in page
    assert "alice" in page  # top earner
    assert "cdn" not in page.lower()


def test_csv_exports_are_streamed(app: Flask, db: Database) -> None:
    earn(db, "alice", "o-1", 5000)
    client = app.test_client()
    login(client, "operations")
    for name, expected in (("members", "alice"), ("lots", "alice"), ("ledger", "earn")):
        response = client.get(f"/admin/export/{name}.csv")
        assert response.status_code == 200 and response.is_streamed
        assert response.mimetype == "text/csv"
        text = response.get_data(as_text=True)
        assert expected in text and len(text.splitlines()) >= 2
    assert s.list_audit(db, action="export.").total == 3


def test_users_cli_creates_lists_changes_and_disables(database_url: str, db: Database) -> None:
    runner = CliRunner()
    env = {"JIFEN_DATABASE_URL": database_url}
    created = runner.invoke(
        users,
        ["create", "--username", "zoe", "--role", "marketing"],
        input="s3cret-pass\ns3cret-pass\n",
        env=env,
    )
    assert created.exit_code == 0, created.output
    assert "s3cret-pass" not in created.output
    assert (
        runner.invoke(
            users, ["set-role", "--username", "zoe", "--role", "admin"], env=env
        ).exit_code
        == 0
    )
    language = ["set-language", "--username", "zoe", "--language", "zh"]
    assert runner.invoke(users, language, env=env).exit_code == 0
    assert runner.invoke(users, ["disable", "--username", "zoe"], env=env).exit_code == 0
    [zoe] = list_users(db)
    assert (zoe.role, zoe.active, zoe.locale) == ("admin", False, "zh_Hans")
    listing = runner.invoke(users, ["list"], env=env)
    assert "zoe" in listing.output and "disabled" in listing.output and "zh_Hans" in listing.output
    missing = runner.invoke(users, ["disable", "--username", "nobody"], env=env)
    assert missing.exit_code == 1 and "jifen users list" in missing.output
    short = runner.invoke(
        users, ["create", "--username", "x", "--role", "viewer", "--password", "short"], env=env
    )
    assert short.exit_code == 1 and "at least 8" in short.output
    assert [e.action for e in s.list_audit(db, action="user.").items] == [
        "user.disable",
        "user.set_language",
        "user.set_role",
        "user.create",
    ]
