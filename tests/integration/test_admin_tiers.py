"""Tiers in the console: every role reads the tiers page, marketing and admin preview (which
writes nothing), publish and cancel; a bad draft is refused in the form with nothing written;
the dashboard charts members per tier; the member page shows the tier panel with its history
in words, and only admin may set a member's tier by hand."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from tests.integration.helpers import PROGRAM, earn, local, row_counts
from tests.integration.test_admin_support import build_app, login, post

LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "Member", "threshold": 0},
        {
            "code": "silver",
            "name": "Silver",
            "threshold": 1_000,
            "multiplier": "1.5",
            "benefits": ["Free shipping"],
        },
        {"code": "gold", "name": "Gold", "threshold": 5_000, "multiplier": "2"},
    ],
    "grace_days": 30,
}
ROLES = ("viewer", "marketing", "operations", "admin")


@pytest.fixture
def app(db: Database, clock: FixedClock) -> Iterator[Flask]:
    clock.set(local(2026, 3, 1, 10))
    yield build_app(db)


@pytest.fixture
def tiered(app: Flask, db: Database) -> Flask:
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="mkt")
    return app


def _signed_in(app: Flask, role: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, role)


def _text(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return html.unescape(response.get_data(as_text=True))


def _plain(page: str) -> str:
    """A page's text without tags, spaces collapsed."""
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    return re.sub(r" ([,.:;)])", r"\1", text)


def _draft(**changes: Any) -> dict[str, Any]:
    """The editor's fields for a three-tier ladder (gold at ``gold``), as a browser posts them."""
    fields: dict[str, Any] = {
        "tier_code": ["member", "silver", "gold", ""],
        "tier_name": ["Member", "Silver", "Gold", ""],
        "tier_threshold": ["0", "1,000", "3,000", ""],
        "tier_multiplier": ["1", "1.5", "2", ""],
        "tier_benefits": ["", "Free shipping\nBirthday gift", "", ""],
        "measure": "points",
        "window": "rolling",
        "window_months": "12",
        "anchor": "upgrade",
        "period_months": "12",
        "grace_days": "0",
        "downgrade": "one",
        "on_reversal": "next_evaluation",
        "effective_from": "",
        "action": "preview",
    }
    fields.update(changes)
    return fields


def _previewed(page: str) -> str:
    found = re.search(r'name="previewed" value="([0-9a-f]+)"', page)
    assert found, "the preview carries the draft's fingerprint"
    return found.group(1)


# --- who may do what -------------------------------------------------------------------------


def test_every_role_reads_the_tiers_page_and_its_link(tiered: Flask) -> None:
    for role in ROLES:
        client, _ = _signed_in(tiered, role)
        assert 'href="/admin/tiers/"' in _text(client, "/admin/")
        page = _plain(_text(client, "/admin/tiers/"))
        assert "In force now: tier version 1" in page
        assert "Silver silver 1,000 points × 1.5 Free shipping" in page
        can_edit = role in ("marketing", "admin")
        assert ("Only marketing and admin users can change the tiers." in page) != can_edit


def test_viewer_and_operations_cannot_preview_publish_or_cancel(
    tiered: Flask, db: Database
) -> None:
    s.publish_tiers(
        db, program=PROGRAM, rules=LADDER, effective_from=local(2026, 6, 1), created_by="mkt"
    )
    before = row_counts(db)
    for role in ("viewer", "operations"):
        client, token = _signed_in(tiered, role)
        assert post(client, "/admin/tiers/draft", token, **_draft()).status_code == 403
        publish = _draft(action="publish", previewed="x")
        assert post(client, "/admin/tiers/draft", token, **publish).status_code == 403
        assert post(client, "/admin/tiers/cancel", token, version="2").status_code == 403
    assert row_counts(db) == before
    assert [v.version for v in s.list_tier_versions(db, program=PROGRAM)] == [1, 2]


def test_a_post_without_its_csrf_token_is_refused_and_writes_nothing(
    tiered: Flask, db: Database
) -> None:
    client, _ = _signed_in(tiered, "admin")
    before = row_counts(db)
    response = client.post("/admin/tiers/draft", data=_draft(action="publish"))
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    response = client.post(
        "/admin/members/set-tier",
        data={"member": "alice", "tier": "gold", "reason": "VIP", "change_id": "c1"},
    )
    assert response.status_code == 400
    assert row_counts(db) == before


# --- preview, publish, cancel ----------------------------------------------------------------


def test_the_preview_counts_members_per_tier_now_and_under_the_draft_and_writes_nothing(
    tiered: Flask, db: Database
) -> None:
    earn(db, "alice", "o-1", 120_000)  # 1,200 points: silver now
    earn(db, "bob", "o-2", 350_000)  # 3,500 points: silver now, gold under the draft
    client, token = _signed_in(tiered, "marketing")
    before = row_counts(db)
    response = post(client, "/admin/tiers/draft", token, **_draft())
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert row_counts(db) == before
    now = dict(re.findall(r'data-testid="preview-now-(\w+)">([^<]*)<', page))
    draft = dict(re.findall(r'data-testid="preview-draft-(\w+)">([^<]*)<', page))
    assert now == {"member": "0", "silver": "2", "gold": "0"}
    assert draft == {"member": "0", "silver": "1", "gold": "1"}
    assert "Nothing is published yet." in page
    assert [v.version for v in s.list_tier_versions(db, program=PROGRAM)] == [1]


def test_marketing_publishes_after_the_preview_now_and_from_a_local_time(
    tiered: Flask, db: Database
) -> None:
    client, token = _signed_in(tiered, "marketing")
    fields = _draft(effective_from="2026-04-01T00:00")
    preview = post(client, "/admin/tiers/draft", token, **fields).get_data(as_text=True)
    fingerprint = _previewed(preview)
    changed = _draft(effective_from="2026-04-01T00:00", tier_threshold=["0", "1,000", "4,000", ""])
    stale = post(
        client,
        "/admin/tiers/draft",
        token,
        **{**changed, "action": "publish", "previewed": fingerprint},
    )
    assert "The draft changed since its preview" in stale.get_data(as_text=True)
    assert len(s.list_tier_versions(db, program=PROGRAM)) == 1
    published = post(
        client,
        "/admin/tiers/draft",
        token,
        **{**fields, "action": "publish", "previewed": fingerprint},
    )
    assert published.status_code == 302
    page = _plain(_text(client, "/admin/tiers/"))
    assert "Published tier version 2, in force from Apr 1, 2026, 00:00 (Asia/Shanghai)." in page
    assert "Scheduled: tier version 2, in force from Apr 1, 2026, 00:00 (Asia/Shanghai)." in page
    version = s.list_tier_versions(db, program=PROGRAM)[-1]
    assert version.effective_from_at == local(2026, 4, 1)
    assert [t["threshold"] for t in version.rules["tiers"]] == [0, 1_000, 3_000]
    assert version.rules["tiers"][1]["benefits"] == ["Free shipping", "Birthday gift"]
    now = _draft()
    fingerprint = _previewed(
        post(client, "/admin/tiers/draft", token, **now).get_data(as_text=True)
    )
    response = post(
        client,
        "/admin/tiers/draft",
        token,
        **{**now, "action": "publish", "previewed": fingerprint},
    )
    assert response.status_code == 302
    assert s.tiers_in_force(db, program=PROGRAM) is not None
    assert s.tiers_in_force(db, program=PROGRAM)[0] == 3  # type: ignore[index]


def test_a_first_version_is_published_from_the_starter_ladder(app: Flask, db: Database) -> None:
    client, token = _signed_in(app, "admin")
    page = _plain(_text(client, "/admin/tiers/"))
    assert "No tiers are in force" in page and "Draft the first tier version" in page
    assert _text(client, "/admin/").count('data-testid="tier-chart"') == 0
    fields = _draft()
    fingerprint = _previewed(
        post(client, "/admin/tiers/draft", token, **fields).get_data(as_text=True)
    )
    post(
        client,
        "/admin/tiers/draft",
        token,
        **{**fields, "action": "publish", "previewed": fingerprint},
    )
    assert s.tiers_in_force(db, program=PROGRAM) is not None


def test_a_money_measure_takes_thresholds_in_the_currency(tiered: Flask, db: Database) -> None:
    client, token = _signed_in(tiered, "marketing")
    fields = _draft(measure="money", tier_threshold=["0", "500", "2,000.50", ""])
    preview = post(client, "/admin/tiers/draft", token, **fields).get_data(as_text=True)
    assert "CNY 2,000.50 spent" in html.unescape(preview)
    fingerprint = _previewed(preview)
    post(
        client,
        "/admin/tiers/draft",
        token,
        **{**fields, "action": "publish", "previewed": fingerprint},
    )
    rules = s.list_tier_versions(db, program=PROGRAM)[-1].rules
    assert (rules["measure"], [t["threshold"] for t in rules["tiers"]]) == (
        "money",
        [0, 50_000, 200_050],
    )
    page = _plain(_text(client, "/admin/tiers/"))
    assert "Silver silver CNY 500.00 spent × 1.5" in page
    assert 'value="2,000.50"' in _text(client, "/admin/tiers/")
    bad = _draft(measure="money", tier_threshold=["0", "500", "2,000.505", ""])
    response = post(client, "/admin/tiers/draft", token, **bad)
    assert response.status_code == 400
    assert "tier 3: the threshold must be an amount of CNY" in html.unescape(
        response.get_data(as_text=True)
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tier_threshold": ["5", "1,000", "3,000", ""]}, "must have threshold 0"),
        ({"tier_threshold": ["0", "3,000", "1,000", ""]}, "needs a threshold above"),
        ({"tier_threshold": ["0", "lots", "3,000", ""]}, "tier 2: the threshold must be a whole"),
        ({"tier_multiplier": ["1", "0.5", "2", ""]}, "multiplier must be between 1 and 100"),
        ({"tier_code": ["member", "Silver!", "gold", ""]}, "code must be 1-32 lowercase"),
        ({"window": "calendar", "window_months": "5"}, "must divide the year"),
        ({"grace_days": "x"}, "grace days must be a whole number"),
        ({"effective_from": "2026-02-01T00:00"}, "cannot take effect in the past"),
        ({"effective_from": "tomorrow"}, "effective from is not a date and time"),
    ],
)
def test_a_bad_draft_is_refused_in_the_form_and_changes_nothing(
    tiered: Flask, db: Database, changes: dict[str, Any], message: str
) -> None:
    client, token = _signed_in(tiered, "marketing")
    before = row_counts(db)
    for action in ("preview", "publish"):
        response = post(
            client, "/admin/tiers/draft", token, **{**_draft(**changes), "action": action}
        )
        assert response.status_code == 400
        page = html.unescape(response.get_data(as_text=True))
        problem = re.search(r'data-testid="problem">([^<]*)<', page)
        assert problem and message in problem.group(1), page[-3000:]
        assert 'data-testid="preview"' not in page
    assert row_counts(db) == before


def test_publishing_without_a_tier_members_hold_is_refused_in_the_form(
    tiered: Flask, db: Database
) -> None:
    earn(db, "alice", "o-1", 600_000)  # gold
    client, token = _signed_in(tiered, "admin")
    fields = _draft(
        tier_code=["member", "silver", "", ""],
        tier_name=["Member", "Silver", "", ""],
        tier_threshold=["0", "1,000", "", ""],
        tier_multiplier=["1", "1.5", "", ""],
        tier_benefits=["", "", "", ""],
    )
    fingerprint = _previewed(
        post(client, "/admin/tiers/draft", token, **fields).get_data(as_text=True)
    )
    before = row_counts(db)
    response = post(
        client,
        "/admin/tiers/draft",
        token,
        **{**fields, "action": "publish", "previewed": fingerprint},
    )
    assert response.status_code == 400
    assert "gold" in html.unescape(response.get_data(as_text=True))
    assert row_counts(db) == before


def test_marketing_cancels_a_scheduled_version_but_not_the_one_in_force(
    tiered: Flask, db: Database
) -> None:
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, effective_from=local(2026, 6, 1))
    client, token = _signed_in(tiered, "marketing")
    page = _text(client, "/admin/tiers/")
    assert 'data-testid="cancel-v2"' in page and 'data-testid="cancel-v1"' not in page
    post(client, "/admin/tiers/cancel", token, version="1")
    assert "is in force and cannot be cancelled" in _text(client, "/admin/tiers/")
    post(client, "/admin/tiers/cancel", token, version="two")
    assert "choose the version to cancel" in _text(client, "/admin/tiers/")
    post(client, "/admin/tiers/cancel", token, version="2")
    page = _plain(_text(client, "/admin/tiers/"))
    assert "Cancelled tier version 2: it will not take effect on Jun 1, 2026, 00:00" in page
    assert "Nothing scheduled." in page
    assert [v.version for v in s.list_tier_versions(db, program=PROGRAM)] == [1]


def test_the_settings_and_the_forecast_read_in_words(
    tiered: Flask, db: Database, clock: FixedClock
) -> None:
    earn(db, "alice", "o-1", 120_000)  # silver, evaluated 2027-03-01 + 30 days grace
    client, _ = _signed_in(tiered, "viewer")
    page = _plain(_text(client, "/admin/tiers/"))
    assert "rolling: what was counted in the last 12 months" in page
    assert "30 days after the period ends to requalify before the evaluation" in page
    assert "one tier at a time when the measure falls short" in page
    assert "not manual adjustments or transfers" in page
    clock.set(local(2027, 2, 1, 10))
    page = _text(client, "/admin/tiers/?days=90")
    summary = {
        days: re.search(rf'data-testid="forecast-{days}">(.*?)</tr>', page, re.S)
        for days in (30, 90, 365)
    }
    assert all(summary.values())
    assert [c for c in re.findall(r'class="num">([^<]*)<', summary[90].group(1))] == ["0", "0", "1"]  # type: ignore[union-attr]
    assert [c for c in re.findall(r'class="num">([^<]*)<', summary[30].group(1))] == ["0", "0", "0"]  # type: ignore[union-attr]
    moves = _plain(re.search(r'data-testid="moves">(.*?)</table>', page, re.S).group(1))  # type: ignore[union-attr]
    assert "Silver keeps Silver 1" in moves
    assert client.get("/admin/tiers/?days=7").status_code == 400


# --- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_charts_members_per_tier(tiered: Flask, db: Database) -> None:
    earn(db, "alice", "o-1", 120_000)  # silver; bob stays member
    client, _ = _signed_in(tiered, "viewer")
    page = _text(client, "/admin/")
    chart = re.search(r'data-testid="tier-chart">(.*?)</figure>', page, re.S)
    assert chart and "Members per tier now" in chart.group(1)
    assert re.findall(r'data-value="(\d+)"', chart.group(1)) == ["1", "1"]
    assert "Member 1 · Silver 1 · Gold 0" in _plain(page)


# --- the member page -------------------------------------------------------------------------


def test_the_member_panel_shows_tier_progress_and_history_in_words(
    tiered: Flask, db: Database, clock: FixedClock
) -> None:
    earn(db, "alice", "o-12", 120_000)  # 1,200 points: silver
    client, _ = _signed_in(tiered, "viewer")
    page = _text(client, "/admin/members/member?id=alice")
    panel = _plain(re.search(r'data-testid="tier-panel">(.*?)</div></div>', page, re.S).group(1))  # type: ignore[union-attr]
    assert "Tier Silver earns × 1.5" in panel
    assert "Measure: 1,200 points" in panel
    assert "3,800 points more for Gold" in panel
    assert "Already enough to keep Silver at the evaluation on Mar 31, 2027." in panel
    assert "Free shipping" in panel
    assert "Moved up from Member to Silver: earned" in panel and "(measure 1,200 points)" in panel
    assert re.search(r'<progress[^>]*value="1200" max="5000"', page)
    assert 'data-testid="set-tier-form"' not in page
    clock.set(local(2027, 3, 31, 10))
    s.evaluate_tiers(db, program=PROGRAM)
    page = _plain(_text(client, "/admin/members/member?id=alice"))
    assert "Kept Silver at the evaluation due 2027-03-31 (measure 1,200 points)" in page


def test_only_admin_sets_a_tier_by_hand_with_a_lock(tiered: Flask, db: Database) -> None:
    earn(db, "alice", "o-1", 120_000)
    for role in ("viewer", "marketing", "operations"):
        client, token = _signed_in(tiered, role)
        assert 'data-testid="set-tier-form"' not in _text(client, "/admin/members/member?id=alice")
        before = row_counts(db)
        response = post(
            client,
            "/admin/members/set-tier",
            token,
            member="alice",
            tier="gold",
            reason="VIP guest",
            change_id="c-1",
        )
        assert response.status_code == 403, role
        assert row_counts(db) == before
    client, token = _signed_in(tiered, "admin")
    page = _text(client, "/admin/members/member?id=alice")
    assert 'data-testid="set-tier-form"' in page
    change_id = re.search(r'name="change_id" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    response = post(
        client,
        "/admin/members/set-tier",
        token,
        member="alice",
        tier="gold",
        reason="VIP guest",
        change_id=change_id,
        locked_until="2027-06-01",
    )
    assert response.status_code == 302 and response.location.endswith("#tier")
    page = _plain(_text(client, "/admin/members/member?id=alice"))
    assert "Set alice to Gold, locked until 2027-06-01." in page
    assert "Set to Gold by admin: VIP guest, locked until 2027-06-01" in page
    assert "locked at Gold or above until Jun 1, 2027" in page
    [change, *_] = s.tier_history(db, program=PROGRAM, member="alice")
    assert (change.to_tier, change.actor, change.reason) == ("gold", "admin", "lock")
    assert change.locked_until_at == local(2027, 6, 1)


def test_a_bad_manual_change_is_refused_and_changes_nothing(tiered: Flask, db: Database) -> None:
    client, token = _signed_in(tiered, "admin")
    before = row_counts(db)
    bad = [
        ({"tier": "platinum", "reason": "VIP"}, "no tier 'platinum'"),
        ({"tier": "gold", "reason": ""}, "reason"),
        ({"tier": "gold", "reason": "VIP", "locked_until": "soon"}, "lock until must be a date"),
        ({"tier": "gold", "reason": "VIP", "locked_until": "2026-01-01"}, "must lie in the future"),
    ]
    for n, (fields, message) in enumerate(bad):
        post(client, "/admin/members/set-tier", token, member="alice", change_id=f"b{n}", **fields)
        page = _text(client, "/admin/members/member?id=alice")
        alert = re.search(r'class="alert alert-danger[^>]*>([^<]*)<', page)
        assert alert and message in alert.group(1), (fields, alert and alert.group(1))
    assert row_counts(db) == before
    assert s.tier_progress(db, program=PROGRAM, member="alice").tier == "member"


def test_the_member_page_has_no_tier_panel_without_tiers(app: Flask) -> None:
    client, _ = _signed_in(app, "admin")
    assert 'data-testid="tier-panel"' not in _text(client, "/admin/members/member?id=alice")


def test_lock_dates_are_local_midnights() -> None:
    from admin.tier_form import lock_until

    assert lock_until("2027-06-01", "Asia/Shanghai") == dt.datetime(2027, 5, 31, 16, tzinfo=dt.UTC)
    assert lock_until("  ", "Asia/Shanghai") is None


def test_marketing_places_members_by_their_measure_and_it_is_audited(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    earn(db, "alice", "o-1", 600_000)  # 6,000 points before the program had tiers
    s.publish_tiers(db, program=PROGRAM, rules=LADDER)
    viewer, viewer_token = _signed_in(app, "viewer")
    assert 'data-testid="place"' not in _text(viewer, "/admin/tiers/")
    assert post(viewer, "/admin/tiers/place", viewer_token).status_code == 403
    client, token = _signed_in(app, "marketing")
    assert 'data-testid="place"' in _text(client, "/admin/tiers/")
    post(client, "/admin/tiers/place", token)
    assert "1 moved up" in _plain(_text(client, "/admin/tiers/"))
    assert s.tier_progress(db, program=PROGRAM, member="alice").tier != "member"
    [entry] = s.list_audit(db, program=PROGRAM, action="tiers.place").items
    assert entry.after == {"moved_up": 1, "batches": 1}
