"""Risk control in the console, on SQLite and PostgreSQL: every role reads the cases, a case
and the rules; admin previews (which writes nothing) and publishes rules, and a bad draft is
refused in the form with nothing published; operations assign and resolve cases, run the
scan, freeze and unfreeze members and release holds; the member page shows the risk panel;
a viewer (and marketing) gets 403 on every change and nothing is written."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.risk_form import EXAMPLE_RULES
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import MemberFrozen
from tests.integration.helpers import PROGRAM, earn, enrol, local, row_counts, scalar
from tests.integration.test_admin_support import build_app, login, post

ROLES = ("viewer", "marketing", "operations", "admin")
FARMING = {
    "rules": [{"id": "refund-farming", "kind": "farming", "refunded_percent": 50, "action": "hold"}]
}


@pytest.fixture
def app(db: Database, clock: FixedClock) -> Iterator[Flask]:
    clock.set(local(2026, 3, 1, 10))
    yield build_app(db)


def farm(db: Database, clock: FixedClock, member: str = "alice", cycles: int = 5) -> int:
    """``member`` buys and refunds ``cycles`` times, the scan holds them, and a later earn of
    100 points stays held; the farming case's id."""
    for i in range(cycles):
        clock.advance(dt.timedelta(hours=1))
        earn(db, member, f"{member}-o{i}", 10_000)
        s.refund_order(
            db,
            program=PROGRAM,
            order_id=f"{member}-o{i}",
            refund_id=f"{member}-r{i}",
            amount_minor=10_000,
            currency="CNY",
            succeeded=True,
        )
    s.scan_risk(db, program=PROGRAM)
    assert earn(db, member, f"{member}-held", 10_000).status == "pending"
    [case] = s.list_risk_cases(db, program=PROGRAM, member=member, rule_id="refund-farming").items
    return case.id


@pytest.fixture
def farming_case(app: Flask, db: Database, clock: FixedClock) -> int:
    s.publish_risk_rules(db, program=PROGRAM, rules=FARMING, actor="boss", note="first rules")
    return farm(db, clock)


def signed_in(app: Flask, role: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, role)


def page_text(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    return plain(response.get_data(as_text=True))


def plain(page: str) -> str:
    """A page's text without tags, entities decoded, spaces collapsed."""
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return re.sub(r" ([,.:;)])", r"\1", text)


def editor_fields(rules: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The editor's fields for a rule set, as a browser posts them (one row per rule)."""
    fields: dict[str, list[str]] = {}
    for rule in rules["rules"]:
        kind = rule["kind"]
        for name, value in rule.items():
            if name != "kind":
                fields.setdefault(f"{kind}.{name}", []).append(str(value))
    return {**fields, "action": "preview", **changes}


def previewed(response: Any) -> str:
    found = re.search(r'name="previewed" value="([0-9a-f]+)"', response.get_data(as_text=True))
    assert found, "the preview carries the draft's fingerprint"
    return found.group(1)


# --- who may do what -------------------------------------------------------------------------


def test_every_role_reads_the_cases_a_case_and_the_rules(app: Flask, farming_case: int) -> None:
    for role in ROLES:
        client, _ = signed_in(app, role)
        assert 'href="/admin/risk/"' in client.get("/admin/").get_data(as_text=True)
        cases = page_text(client, "/admin/risk/")
        assert "refund-farming alice on hold 100 % of 500 points" in cases
        assert ("Run risk scan now" in cases) == (role in ("operations", "admin"))
        case = page_text(client, f"/admin/risk/case?id={farming_case}")
        assert "5 refunds" in case and "Evidence" in case
        assert ("Work the case" in case) == (role in ("operations", "admin"))
        rules = page_text(client, "/admin/risk/rules")
        assert "In force: version 1" in rules
        assert "会员近 30 天获得的积分中退款比例超过 50%" in rules
        assert ("Only admin users can change the risk rules." in rules) == (role != "admin")


def test_a_viewer_and_marketing_cannot_change_anything(
    app: Flask, db: Database, farming_case: int
) -> None:
    before = row_counts(db)
    for role in ("viewer", "marketing"):
        client, token = signed_in(app, role)
        draft = editor_fields(EXAMPLE_RULES)
        assert post(client, "/admin/risk/rules/draft", token, **draft).status_code == 403
        publish = {**draft, "action": "publish", "previewed": "x"}
        assert post(client, "/admin/risk/rules/draft", token, **publish).status_code == 403
        resolve = {"id": farming_case, "outcome": "release", "note": "fine"}
        assert post(client, "/admin/risk/case/resolve", token, **resolve).status_code == 403
        assign = {"id": farming_case, "assignee": role}
        assert post(client, "/admin/risk/case/assign", token, **assign).status_code == 403
        assert post(client, "/admin/risk/scan", token).status_code == 403
        for change in ("freeze", "unfreeze", "release-hold"):
            answer = post(client, f"/admin/risk/member/{change}", token, member="alice", reason="x")
            assert answer.status_code == 403, change
    client, token = signed_in(app, "operations")  # operations work cases, not rules
    assert post(client, "/admin/risk/rules/draft", token, **draft).status_code == 403
    assert row_counts(db) == before
    assert [v.version for v in s.risk_rule_versions_of(db, program=PROGRAM)] == [1]


def test_a_post_without_its_csrf_token_is_refused(app: Flask, db: Database) -> None:
    client, _ = signed_in(app, "admin")
    before = row_counts(db)
    response = client.post("/admin/risk/member/freeze", data={"member": "alice", "reason": "x"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert row_counts(db) == before


# --- rules: preview, publish, refuse ---------------------------------------------------------


def test_admin_starts_from_the_example_previews_its_sentences_and_publishes(
    app: Flask, db: Database
) -> None:
    client, token = signed_in(app, "admin")
    page = page_text(client, "/admin/risk/rules")
    assert "No risk rules are in force" in page and "a typical rule set, not in force" in page
    before = row_counts(db)
    preview = post(client, "/admin/risk/rules/draft", token, **editor_fields(EXAMPLE_RULES))
    assert preview.status_code == 200
    shown = plain(preview.get_data(as_text=True))
    assert "Preview: the draft in sentences" in shown
    assert "More than 20 earns per member within an hour: refuse the operation." in shown
    assert "每位会员在 1 小时内超过 20 笔积分获取：拒绝该操作。" in shown
    assert "adds refund-farming" in shown
    assert row_counts(db) == before  # a preview writes nothing

    publish = editor_fields(
        EXAMPLE_RULES, action="publish", previewed=previewed(preview), note="launch"
    )
    done = post(client, "/admin/risk/rules/draft", token, **publish)
    assert done.status_code == 302
    info = s.risk_rules(db, program=PROGRAM)
    assert info is not None and info.version == 1 and info.note == "launch"
    assert info.created_by == "admin"
    assert info.rules == s.risk_rules(db, program=PROGRAM, version=1).rules  # type: ignore[union-attr]
    assert [r["id"] for r in info.rules["rules"]] == [r["id"] for r in EXAMPLE_RULES["rules"]]
    page = page_text(client, "/admin/risk/rules")
    assert "Published risk rules version 1, in force now (6 rules)." in page
    assert "v1 in force" in page and "launch" in page
    entry = s.list_audit(db, program=PROGRAM, action="risk.rules_published").items[0]
    assert (entry.actor, entry.target) == ("admin", "risk-rules:1")


def test_a_draft_changed_after_its_preview_is_not_published(app: Flask, db: Database) -> None:
    client, token = signed_in(app, "admin")
    preview = post(client, "/admin/risk/rules/draft", token, **editor_fields(FARMING))
    changed = editor_fields(FARMING, action="publish", previewed=previewed(preview))
    changed["farming.refunded_percent"] = ["60"]
    again = post(client, "/admin/risk/rules/draft", token, **changed)
    assert again.status_code == 200
    assert "The draft changed since its preview" in plain(again.get_data(as_text=True))
    assert s.risk_rules(db, program=PROGRAM) is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"velocity.limit": ["twenty"]}, "Velocity, row 1 'earn-burst': 'more than' must be a"),
        (
            {"farming.action": ["block"]},
            "Buy-and-refund farming, row 1 'refund-farming': only velocity and "
            "new_member_inflow rules can block",
        ),
        ({"velocity.scope": ["location", "location"], "velocity.action": ["hold", "flag"]},
         "Velocity, row 1 'earn-burst': 'hold' keeps a member's points pending"),
        ({"transfer_ring.id": ["Gift Ring"]}, "Transfer rings, row 1 'Gift Ring': 'id' must be"),
        ({"transfer_ring.id": ["earn-burst"]}, "two risk rules have the id 'earn-burst'"),
    ],
)  # fmt: skip
def test_a_bad_draft_is_refused_in_the_form_and_nothing_is_published(
    app: Flask, db: Database, change: dict[str, Any], problem: str
) -> None:
    client, token = signed_in(app, "admin")
    before = row_counts(db)
    for action in ("preview", "publish"):
        fields = editor_fields(EXAMPLE_RULES, action=action, previewed="x", **change)
        refused = post(client, "/admin/risk/rules/draft", token, **fields)
        assert refused.status_code == 400
        body = refused.get_data(as_text=True)
        assert problem in plain(body)
        assert 'data-testid="problem"' in body
        assert ("is-invalid" in body) == ("two risk rules" not in problem)  # the row is marked
        assert 'data-testid="preview"' not in body
    assert row_counts(db) == before


def test_an_empty_draft_turns_risk_control_off(app: Flask, db: Database) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=FARMING)
    client, token = signed_in(app, "admin")
    preview = post(client, "/admin/risk/rules/draft", token, **editor_fields({"rules": []}))
    shown = plain(preview.get_data(as_text=True))
    assert "publishing it turns risk control off" in shown and "removes refund-farming" in shown
    fields = editor_fields({"rules": []}, action="publish", previewed=previewed(preview))
    post(client, "/admin/risk/rules/draft", token, **fields)
    assert s.risk_rules(db, program=PROGRAM).rules == {"rules": []}  # type: ignore[union-attr]
    assert "Risk control is off (version 2 has no rules)" in page_text(client, "/admin/risk/rules")


# --- cases -----------------------------------------------------------------------------------


def test_the_cases_list_filters_pages_and_shows_local_times(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    s.publish_risk_rules(
        db,
        program=PROGRAM,
        rules={
            "rules": [
                {"id": "busy", "kind": "velocity", "measure": "earns", "limit": 1,
                 "window": "day", "action": "flag"},
                *FARMING["rules"],
            ]
        },
    )  # fmt: skip
    members = [f"m{i:02}" for i in range(26)]
    enrol(db, *members)
    for name in members:
        earn(db, name, f"{name}-1", 1_000)
        earn(db, name, f"{name}-2", 1_000)
    farm(db, clock, "alice", cycles=3)  # alice's cases (busy, farming) are the newest tripped
    client, _ = signed_in(app, "viewer")
    first = page_text(client, "/admin/risk/")
    assert "28 cases" in first and "page 1 of 2" in first
    rows = re.findall(
        r'<tr data-testid="case-(\d+)">(.*?)</tr>', client.get("/admin/risk/").get_data(True), re.S
    )
    assert len(rows) == 25
    newest = s.list_risk_cases(db, program=PROGRAM).items[0]
    assert newest.member == "alice" and int(rows[0][0]) == newest.id
    stamp = newest.last_tripped_at.astimezone(dt.timezone(dt.timedelta(hours=8)))  # Shanghai
    assert plain(rows[0][1]).startswith(f"{newest.id} {newest.rule_id} alice")
    assert plain(rows[0][1]).endswith(f"{stamp:%Y-%m-%d %H:%M} —")  # last tripped, nobody
    second = page_text(client, "/admin/risk/?page=2")
    assert "page 2 of 2" in second
    only = page_text(client, "/admin/risk/?rule=refund-farming")
    assert "1 case" in only and "busy" not in only.split("1 case")[1]
    assert "m07" in page_text(client, "/admin/risk/?member=m07&rule=busy")
    assert "No open cases match these filters" in page_text(client, "/admin/risk/?member=nobody")
    assert "No resolved cases" in page_text(client, "/admin/risk/?status=resolved")


def test_operations_assign_and_release_a_case_with_a_success_flash(
    app: Flask, db: Database, farming_case: int
) -> None:
    client, token = signed_in(app, "operations")
    path = f"/admin/risk/case?id={farming_case}"
    page = page_text(client, path)
    assert "on hold new points stay pending" in page and "points held 100" in page
    assert "refunded 500" in page and "share percent 100" in page
    assert "alice-r4" in page and "alice-o4" in page  # the evidence lists the refunds

    post(client, "/admin/risk/case/assign", token, id=farming_case, me="1", assignee="x")
    assert s.risk_case(db, program=PROGRAM, case_id=farming_case).assigned_to == "operations"
    post(client, "/admin/risk/case/assign", token, id=farming_case, assignee="li.na")
    assert "Case 1 assigned to li.na." in page_text(client, path).replace(
        f"Case {farming_case}", "Case 1"
    )

    missing_note = post(
        client, "/admin/risk/case/resolve", token, id=farming_case, outcome="release", note=" "
    )
    assert missing_note.status_code == 302
    assert "note" in page_text(client, path) and s.list_risk_cases(db, program=PROGRAM).total == 1

    done = post(
        client, "/admin/risk/case/resolve", token,
        id=farming_case, outcome="release", note="genuine returns", points="5",
    )  # fmt: skip
    assert done.status_code == 302 and done.headers["Location"].endswith(path)
    response = client.get(path)
    body = response.get_data(as_text=True)
    assert 'class="alert alert-success' in body
    text = plain(body)
    assert f"Resolved case {farming_case}: released. alice's 100 held points are available." in text
    assert "resolved" in text and "released by operations" in text and "genuine returns" in text
    assert "assigned to li.na" in text
    assert "resolved as released (100 held points made available): genuine returns" in text
    assert "Work the case" not in text
    balance = s.balance(db, program=PROGRAM, member="alice")
    assert (balance.available, balance.pending) == (100, 0)

    again = post(
        client, "/admin/risk/case/resolve", token, id=farming_case, outcome="dismiss", note="x"
    )
    assert again.status_code == 302
    assert "already resolved" in page_text(client, path)


def test_reverse_deducts_the_held_points_by_default(
    app: Flask, db: Database, farming_case: int
) -> None:
    client, token = signed_in(app, "admin")
    page = client.get(f"/admin/risk/case?id={farming_case}").get_data(as_text=True)
    assert 'name="points" type="number" min="1" value="100"' in page
    post(client, "/admin/risk/case/resolve", token, id=farming_case, outcome="reverse",
         note="confirmed farming", points="")  # fmt: skip
    balance = s.balance(db, program=PROGRAM, member="alice")
    assert (balance.available, balance.pending) == (0, 0)
    text = page_text(client, f"/admin/risk/case?id={farming_case}")
    assert "reversed, 100 points deducted from alice" in text
    assert "resolved as reversed (100 held points made available, 100 points deducted)" in text


def test_a_missing_case_is_a_404_page_and_bad_query_strings_a_readable_400(app: Flask) -> None:
    client, _ = signed_in(app, "viewer")
    assert "no risk case 999" in page_text(client, "/admin/risk/case?id=999", 404)
    page_text(client, "/admin/risk/case", 404)
    assert "id must be a whole number" in page_text(client, "/admin/risk/case?id=x", 400)
    assert "page must be a whole number" in page_text(client, "/admin/risk/?page=0", 400)
    assert "status must be one of" in page_text(client, "/admin/risk/?status=closed", 400)


def test_run_scan_now_opens_the_case_and_records_the_run(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    s.publish_risk_rules(db, program=PROGRAM, rules=FARMING)
    for i in range(3):
        earn(db, "bob", f"b{i}", 10_000)
        s.refund_order(
            db, program=PROGRAM, order_id=f"b{i}", refund_id=f"br{i}",
            amount_minor=10_000, currency="CNY", succeeded=True,
        )  # fmt: skip
    client, token = signed_in(app, "operations")
    assert "it has not run yet" in page_text(client, "/admin/risk/")
    post(client, "/admin/risk/scan", token)
    page = page_text(client, "/admin/risk/")
    assert "1 rule evaluated, 1 over a limit; cases 1 opened" in page
    assert "1 member put on hold" in page and "last run" in page
    assert scalar(db, "SELECT count(*) FROM job_runs WHERE job = 'risk' AND trigger = 'console'")
    assert s.list_risk_cases(db, program=PROGRAM).items[0].member == "bob"


# --- the member page -------------------------------------------------------------------------


def test_the_member_panel_freezes_unfreezes_and_releases_the_hold(
    app: Flask, db: Database, farming_case: int
) -> None:
    viewer, _ = signed_in(app, "viewer")
    seen = page_text(viewer, "/admin/members/member?id=alice")
    assert "Risk control account active hold on hold" in seen and "points held 100" in seen
    assert f"case {farming_case} refund-farming hold" in seen
    assert "Freeze account" not in seen and "Release hold" not in seen

    client, token = signed_in(app, "operations")
    path = "/admin/members/member?id=alice"
    assert "Freeze account" in page_text(client, path)
    refused = post(client, "/admin/risk/member/freeze", token, member="alice", reason="")
    assert refused.status_code == 302 and "#risk" in refused.headers["Location"]
    assert "reason" in page_text(client, path)
    assert s.get_member(db, program=PROGRAM, external_id="alice").status == "active"

    post(client, "/admin/risk/member/freeze", token, member="alice", reason="stolen card")
    text = page_text(client, path)
    assert "Froze alice's account: stolen card" in text
    assert "account frozen stolen card" in text and "Unfreeze" in text
    with pytest.raises(MemberFrozen):
        earn(db, "alice", "while-frozen", 1_000)
    post(client, "/admin/risk/member/unfreeze", token, member="alice", reason="card found")
    text = page_text(client, path)
    assert "Unfroze alice's account: card found" in text and "account active" in text

    post(client, "/admin/risk/member/release-hold", token, member="alice", reason="checked")
    text = page_text(client, path)
    assert "Released alice's hold: 100 held points are available." in text
    assert "hold not on hold" in text and "points held 0" in text
    actions = [e.action for e in s.list_audit(db, program=PROGRAM, target="member:alice").items]
    assert actions[:3] == ["risk.hold_released", "member.unfrozen", "member.frozen"]
