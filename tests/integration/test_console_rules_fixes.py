"""The rules page says which version is in force and which are scheduled, cancels a version
before its time (the service, on both databases, and its button with the confirmation that
says what stays in force), offers the editor every version it does not start from, and
shows rule changes in words with local times, on the rules page and in the audit log."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.rules_words import describe_changes
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import Conflict, NotFound
from loyalty.services.audit import cancel_scheduled_rules
from tests.integration.helpers import PROGRAM, earn, enrol, make_program, row_counts
from tests.integration.test_admin_support import build_app, login, post

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
DEC_5 = dt.datetime(2026, 12, 5, 0, 0, tzinfo=SHANGHAI)  # the test clock stands at 11-21
DEC_10 = dt.datetime(2026, 12, 10, 0, 0, tzinfo=SHANGHAI)


def _schedule(db: Database, base_ratio: str, start: dt.datetime | None) -> int:
    return s.publish_rules_audited(
        db, program=PROGRAM, rules={"base_ratio": base_ratio}, actor="ann", effective_from=start
    ).version


# --- the service: cancel_scheduled_rules ------------------------------------------------


def test_a_cancelled_version_never_takes_effect_and_its_number_is_not_given_again(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    assert _schedule(db, "2", DEC_5) == 2
    cancelled = cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert (cancelled.version, cancelled.rules["base_ratio"]) == (2, "2")
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1]
    [entry] = s.list_audit(db, action="rules.cancel").items
    assert (entry.actor, entry.target) == ("ann", "program shop rules v2")
    assert entry.before and entry.before["base_ratio"] == "2" and entry.after is None
    assert entry.before["effective_from"] == "2026-12-04T16:00:00+00:00"

    clock.set(DEC_5 + dt.timedelta(hours=1))
    assert s.rules_in_force(db, program=PROGRAM)[0] == 1
    assert earn(db, "alice", "o-1", 10_000).points_granted == 100  # 1 point per CNY, not 2
    assert _schedule(db, "3", None) == 3


def test_a_version_in_force_cannot_be_cancelled_also_when_its_moment_just_passed(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    _schedule(db, "2", DEC_5)
    clock.set(DEC_5)  # the page showed "scheduled"; the moment passed before the click
    before = row_counts(db)
    with pytest.raises(Conflict, match="in force since 2026-12-05 00:00 Asia/Shanghai"):
        cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert row_counts(db) == before
    assert s.rules_in_force(db, program=PROGRAM)[0] == 2
    with pytest.raises(Conflict, match="in force since"):
        cancel_scheduled_rules(db, program=PROGRAM, version=1, actor="ann")


def test_a_version_that_a_later_one_follows_is_cancelled_only_after_that_one(
    db: Database,
) -> None:
    make_program(db)
    _schedule(db, "2", DEC_5)
    _schedule(db, "3", DEC_10)  # published after v2 and follows it: it may build on v2
    before = row_counts(db)
    with pytest.raises(Conflict, match="cancel version 3 first"):
        cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert row_counts(db) == before
    cancel_scheduled_rules(db, program=PROGRAM, version=3, actor="ann")
    cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1]


def test_a_later_version_that_takes_effect_sooner_does_not_hold_a_cancellation(
    db: Database,
) -> None:
    make_program(db)
    _schedule(db, "3", DEC_10)
    _schedule(db, "2", DEC_5)  # v3 published later but in force before v2's moment
    cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1, 3]


def test_cancelling_an_unknown_or_cancelled_version_says_so_and_changes_nothing(
    db: Database,
) -> None:
    make_program(db)
    _schedule(db, "2", DEC_5)
    cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    before = row_counts(db)
    with pytest.raises(NotFound, match="version 2 of program shop was cancelled"):
        cancel_scheduled_rules(db, program=PROGRAM, version=2, actor="ann")
    with pytest.raises(NotFound, match="version 9 of program shop does not exist"):
        cancel_scheduled_rules(db, program=PROGRAM, version=9, actor="ann")
    assert row_counts(db) == before


def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=30)
        try:
            return call()
        except Exception as exc:  # the test inspects what each call raised
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls, timeout=120))


@pytest.mark.postgres
def test_concurrent_cancels_and_publishes_keep_one_story(pg_db: Database) -> None:
    make_program(pg_db)
    _schedule(pg_db, "2", DEC_5)
    results = _together(
        [lambda: cancel_scheduled_rules(pg_db, program=PROGRAM, version=2, actor="ann")] * 4
        + [lambda: _schedule(pg_db, "5", DEC_10)]
    )
    cancels, published = results[:4], results[4]
    assert sum(not isinstance(r, Exception) for r in cancels) <= 1
    assert published == 3
    versions = [v.version for v in s.list_rule_versions(pg_db, program=PROGRAM)]
    if all(isinstance(r, Exception) for r in cancels):  # the follower came first
        assert versions == [1, 2, 3] and all(isinstance(r, Conflict) for r in cancels)
    else:  # the cancel came first; the others found it cancelled
        assert versions == [1, 3]
        assert sum(isinstance(r, NotFound) for r in cancels) == 3
    assert len(s.list_audit(pg_db, action="rules.cancel").items) == (versions == [1, 3])


# --- the rules page ----------------------------------------------------------------------


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


@pytest.fixture
def marketing(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, "marketing")


def _page(client: FlaskClient, path: str = "/admin/rules/") -> str:
    response = client.get(path)
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


def _preview(client: FlaskClient, token: str, **form: Any) -> str:
    response = post(client, "/admin/rules/draft", token, action="preview", **form)
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_data(as_text=True))


def test_the_page_names_the_version_in_force_the_scheduled_one_and_the_editors_start(
    app: Flask, db: Database, marketing: tuple[FlaskClient, str]
) -> None:
    client, _token = marketing
    _schedule(db, "2", DEC_5)
    page = _page(client)
    assert "In force now: <strong>version 1</strong>" in page
    assert (
        "Scheduled: <strong>version 2</strong>, in force from Dec 5, 2026, 00:00 (Asia/Shanghai)"
        in page
    )
    assert "starts from <strong>version 1 (in force now, since" in page
    assert 'name="base_ratio" value="1"' in page and 'name="base" value="1"' in page

    copy = _page(client, "/admin/rules/?base=2")
    assert "starts from <strong>version 2 (scheduled from Dec 5, 2026, 00:00)" in copy
    assert 'name="base_ratio" value="2"' in copy and 'name="base" value="2"' in copy


def test_the_preview_compares_the_draft_with_the_version_it_replaces_and_names_both(
    app: Flask, db: Database, marketing: tuple[FlaskClient, str]
) -> None:
    client, token = marketing
    _schedule(db, "2", DEC_5)
    after_v2 = _preview(client, token, base_ratio="3", effective_from="2026-12-10T00:00")
    assert "Version 2 (scheduled from Dec 5, 2026, 00:00)</div>" in after_v2
    assert "Draft, in force from Dec 10, 2026, 00:00</div>" in after_v2
    assert 'data-testid="preview-current">200 points' in after_v2
    assert 'data-testid="preview-draft">300 points' in after_v2
    assert "<li>base ratio 2 → 3 points per CNY</li>" in after_v2

    now = _preview(client, token, base_ratio="3")
    assert "Version 1 (in force now, since" in now
    assert "Draft, in force now</div>" in now
    assert "<li>base ratio 1 → 3 points per CNY</li>" in now
    assert "replacing it then: version 2 (scheduled from Dec 5, 2026, 00:00)" in now


def test_every_campaign_column_has_a_real_header_and_no_scroll_box(
    marketing: tuple[FlaskClient, str],
) -> None:
    client, _token = marketing
    page = _page(client)
    campaigns = page.split('data-testid="campaigns"')[1].split("</table>")[0]
    headers = [h.split("</th>")[0] for h in campaigns.split("<th>")[1:]]
    assert headers == [
        "name",
        "multiplier",
        "starts (Asia/Shanghai)",
        "ends",
        "categories",
        "weekdays",
    ]
    assert "table-responsive" not in page.split('data-testid="campaigns"')[0][-300:]


def _cancel(client: FlaskClient, token: str, version: str) -> Any:
    return post(client, "/admin/rules/cancel", token, version=version, confirm="yes")


def test_marketing_cancels_a_scheduled_version_after_a_confirmation(
    app: Flask, db: Database, marketing: tuple[FlaskClient, str]
) -> None:
    client, token = marketing
    _schedule(db, "2", DEC_5)
    assert 'href="/admin/rules/cancel?version=2" data-testid="cancel-v2"' in _page(client)
    asked = _page(client, "/admin/rules/cancel?version=2")
    assert "Cancel rules version 2?" in asked
    assert (
        "scheduled to take effect on <strong>Dec 5, 2026, 00:00</strong> (Asia/Shanghai)" in asked
    )
    assert "from then on <strong>version 1 (in force now, since" in asked
    assert "<li>base ratio 1 → 2 points per CNY</li>" in asked
    assert 'name="confirm" value="yes"' in asked and 'data-testid="keep"' in asked
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1, 2]

    unconfirmed = post(client, "/admin/rules/cancel", token, version="2")
    assert unconfirmed.status_code == 302
    assert unconfirmed.headers["Location"].endswith("/admin/rules/cancel?version=2")
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1, 2]
    assert not s.list_audit(db, action="rules.cancel").items

    assert _cancel(client, token, "2").status_code == 302
    page = _page(client)
    assert "Cancelled rules version 2: it will not take effect on Dec 5, 2026, 00:00" in page
    assert "Nothing scheduled." in page
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1]
    [entry] = s.list_audit(db, action="rules.cancel").items
    assert entry.actor == "marketing"


def test_the_confirmation_names_what_stays_in_force_then_and_a_version_that_follows(
    app: Flask, db: Database, marketing: tuple[FlaskClient, str]
) -> None:
    client, _token = marketing
    _schedule(db, "2", DEC_5)
    _schedule(db, "3", DEC_10)
    later = _page(client, "/admin/rules/cancel?version=3")
    assert "from then on <strong>version 2 (scheduled from Dec 5, 2026, 00:00)</strong>" in later
    assert "<li>base ratio 2 → 3 points per CNY</li>" in later
    assert 'data-testid="confirm-cancel"' in later

    followed = _page(client, "/admin/rules/cancel?version=2")
    assert "Published after it and following it: version 3 (scheduled from Dec 10, 2026" in followed
    assert "Cancel that one first." in followed
    assert 'data-testid="confirm-cancel"' not in followed


def test_a_version_that_is_not_scheduled_has_no_confirmation(
    app: Flask, db: Database, marketing: tuple[FlaskClient, str]
) -> None:
    client, _token = marketing
    _schedule(db, "2", DEC_5)
    for asked, said in (
        ("1", "rules version 1 is not scheduled for later: only a version that has not"),
        ("7", "rules version 7 is not scheduled for later"),
        ("v2", "choose the version to cancel from the rules page"),
        ("", "choose the version to cancel from the rules page"),
    ):
        response = client.get(f"/admin/rules/cancel?version={asked}", follow_redirects=True)
        page = response.get_data(as_text=True)
        assert said in page and "Cancel rules version" not in page, asked
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1, 2]


def test_a_cancel_clicked_after_the_moment_passed_is_refused_with_what_to_do(
    app: Flask, db: Database, clock: FixedClock, marketing: tuple[FlaskClient, str]
) -> None:
    client, token = marketing
    _schedule(db, "2", DEC_5)
    assert 'data-testid="confirm-cancel"' in _page(client, "/admin/rules/cancel?version=2")
    clock.set(DEC_5 + dt.timedelta(seconds=1))
    _cancel(client, token, "2")
    page = _page(client)
    assert "rules version 2 has been in force since 2026-12-05 00:00 Asia/Shanghai" in page
    assert "publish a new version with the rules you want instead" in page
    assert s.rules_in_force(db, program=PROGRAM)[0] == 2
    assert not s.list_audit(db, action="rules.cancel").items


def test_only_marketing_and_admin_cancel_and_only_with_the_form_token(
    app: Flask, db: Database
) -> None:
    _schedule(db, "2", DEC_5)
    viewer, operations, admin = (app.test_client() for _ in range(3))
    for client, name in ((viewer, "viewer"), (operations, "operations")):
        token = login(client, name)
        assert 'data-testid="cancel-v2"' not in _page(client)
        assert client.get("/admin/rules/cancel?version=2").status_code == 403
        assert _cancel(client, token, "2").status_code == 403
    token = login(admin, "admin")
    forged = admin.post("/admin/rules/cancel", data={"version": "2", "confirm": "yes"})
    assert forged.status_code == 400
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1, 2]
    assert _cancel(admin, token, "v2").status_code == 302
    assert "choose the version to cancel" in _page(admin)
    assert _cancel(admin, token, "2").status_code == 302
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1]


def test_the_editor_offers_the_versions_it_does_not_start_from(
    app: Flask, db: Database, marketing: tuple[FlaskClient, str]
) -> None:
    client, _token = marketing
    _schedule(db, "2", DEC_5)
    _schedule(db, "3", DEC_10)

    def offered(page: str) -> list[str]:
        line = page.split('data-testid="editor-base"')[1].split("</p>")[0]
        return [part.split('"')[0] for part in line.split('data-testid="start-from-v')[1:]]

    assert offered(_page(client)) == ["2", "3"]
    from_v2 = _page(client, "/admin/rules/?base=2")
    assert offered(from_v2) == ["1", "3"]
    assert "version 1 (in force now)</a>" in from_v2 and "version 3 (scheduled)</a>" in from_v2


WEEKEND = {
    "camp_name": ["Weekend"],
    "camp_multiplier": ["2"],
    "camp_starts": ["2026-12-05T00:00"],
    "camp_ends": ["2026-12-07T00:00"],
    "camp_categories": [""],
    "camp_weekdays": ["Sat Sun"],
}
WEEKEND_WORDS = (
    "campaign Weekend added: ×2, Sat Sun, Dec 5, 2026, 00:00–Dec 7, 2026, 00:00 Asia/Shanghai, "
    "all categories"
)


def test_rule_changes_read_in_words_on_the_rules_page_and_in_the_audit_log(
    app: Flask, db: Database, marketing: tuple[FlaskClient, str]
) -> None:
    client, token = marketing
    form = {"base_ratio": "2", "cat_name": ["grocery"], "cat_ratio": ["0.5"], **WEEKEND}
    preview = _preview(client, token, **form)
    assert f"<li>{WEEKEND_WORDS}</li>" in preview
    assert "<li>base ratio 1 → 2 points per CNY</li>" in preview
    assert "[5, 6]" not in preview and "T16:00:00+00:00" not in preview
    digest = preview.split('name="previewed" value="')[1].split('"')[0]
    post(client, "/admin/rules/draft", token, action="publish", previewed=digest, **form)
    later = s.publish_rules_audited(
        db, program=PROGRAM, rules={"base_ratio": "3"}, actor="ann", effective_from=DEC_10
    )
    cancel_scheduled_rules(db, program=PROGRAM, version=later.version, actor="ann")

    audit = _page(client, "/admin/audit/?action=rules.")
    words = audit.split('data-testid="audit-words"')[1:]
    assert len(words) == 3  # newest first: the cancel, the scheduled publication, the first
    cancelled = "version 3 cancelled before its time; it was to take effect Dec 10, 2026, 00:00"
    assert cancelled in words[0]
    assert "version 2 → 3, in force from Dec 10, 2026, 00:00 Asia/Shanghai" in words[1]
    assert "<li>base ratio 2 → 3 points per CNY</li>" in words[1]
    assert "campaign Weekend removed (was ×2, Sat Sun, Dec 5, 2026, 00:00–" in words[1]
    assert "version 1 → 2, in force from Nov 21, 2026, 18:00 Asia/Shanghai" in words[2]
    assert f"<li>{WEEKEND_WORDS}</li>" in words[2]
    assert "raw values" in words[2]  # the stored values stay one click away


def test_every_setting_has_its_words() -> None:
    before = {
        "base_ratio": "1",
        "category_ratios": {"grocery": "0.5", "toys": "2"},
        "sku_ratios": {},
        "actions": {"sign_in": {"points": 5, "limit": 1, "period": "day"}},
        "caps": {"member_daily": None, "program_daily": 1_000_000},
        "pending_days": 0,
        "expiry": {"months": 3, "days": 0, "month_end": False},
    }
    after = {
        "base_ratio": "1",
        "category_ratios": {"grocery": "1", "数码": "3"},
        "sku_ratios": {"SKU-1": "5"},
        "actions": {"sign_in": {"points": 10, "limit": None, "period": "day"}},
        "caps": {"member_daily": 5_000, "program_daily": None},
        "pending_days": 7,
        "expiry": {"months": 12, "days": 0, "month_end": True},
    }
    assert rules_form_words(before, after) == [
        "category grocery: 0.5 points per CNY → 1 point per CNY",
        "category toys removed (was 2 points per CNY)",
        "category 数码 added: 3 points per CNY",
        "SKU SKU-1 added: 5 points per CNY",
        "action sign_in: 5 points, at most 1 per day → 10 points, no limit",
        "member daily cap no cap → 5,000 points",
        "program daily budget 1,000,000 points → no cap",
        "pending period 0 → 7 days",
        "expiry after 3 months → after 12 months, rounded up to the end of the month",
    ]
    assert rules_form_words(after, after) == []


def rules_form_words(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return describe_changes(before, after, currency="CNY", tz="Asia/Shanghai")


def test_a_draft_set_in_the_past_is_refused_before_any_preview(
    marketing: tuple[FlaskClient, str],
) -> None:
    client, token = marketing
    response = post(
        client,
        "/admin/rules/draft",
        token,
        action="preview",
        base_ratio="2",
        effective_from="2020-01-01T00:00",
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "cannot take effect in the past: choose a later" in text
    assert 'data-testid="preview"' not in text
