"""The dashboard's health strip in a real browser (Debian's chromium, headless, driven by
Playwright): a job that ran a minute ago reads green, one overdue and ones that never ran
read red, worst first; the program's outbox and webhook backlogs, failed deliveries, open
risk cases and parked Stripe events show what the tables hold, the parked events link to the
Stripe events page filtered on them, and the values are those ``/metrics`` serves.

Screenshots at 1280 and 390 pixels wide go to ``tests/e2e/screenshots/``
(``health-strip-*``). The page must not overflow the window, break the
Content-Security-Policy or load anything from another site.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.jobs.runs import run_job
from loyalty.monitoring.snapshot import scheduled_jobs
from tests.e2e.browser_support import (
    CHROMIUM,
    WIDTHS,
    PageWatch,
    require_chromium,
    screenshots,
    served,
)
from tests.integration.helpers import earn, local
from tests.integration.test_admin_support import PASSWORDS, build_app
from tests.integration.test_monitoring import _seed_waiting


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database, FixedClock]]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(local(2026, 11, 27, 14, 2))
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    with served(app) as base:
        yield base, db, clock
    db.dispose()


def _state(db: Database, clock: FixedClock) -> None:
    """Expire ran three hours ago (overdue), events a minute ago; earns wait in the outbox;
    two Stripe events are parked and one risk case is open."""
    earn(db, "alice", "order-1", 25_000)
    earn(db, "bob", "order-2", 8_800)
    run_job(db, "expire", trigger="test")
    clock.advance(dt.timedelta(hours=3))
    run_job(db, "events", trigger="test")  # dispatches the outbox: no endpoint, nothing pending
    earn(db, "alice", "order-3", 1_200)
    clock.advance(dt.timedelta(minutes=1))
    _seed_waiting(db, clock)


def _metrics(base: str) -> dict[str, float]:
    found: dict[str, float] = {}
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def test_the_health_strip_reads_job_lag_and_backlogs(
    console: tuple[str, Database, FixedClock],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, db, clock = console
    _state(db, clock)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        watch = PageWatch(base).attach(page)

        page.goto(f"{base}/login")
        page.fill("#username", "operations")
        page.fill("#password", PASSWORDS["operations"])
        page.click("button[type=submit]")
        strip = page.get_by_test_id("health-strip")
        expect(strip).to_be_visible()

        jobs = page.get_by_test_id("health-jobs")
        names = jobs.locator(".jifen-health-item .name").all_inner_texts()
        assert names[-2:] == ["expire", "events"], names  # worst first: events is fine
        assert set(names[:-2]) == set(scheduled_jobs()) - {"expire", "events"}  # never ran
        events = page.get_by_test_id("health-job-events")
        expect(events).to_have_attribute("data-state", "ok")
        expect(events).to_contain_text("1 min ago")
        expire = page.get_by_test_id("health-job-expire")
        expect(expire).to_have_attribute("data-state", "alert")
        expect(expire).to_contain_text("3 h 1 min ago")
        expect(page.get_by_test_id("health-job-tiers")).to_contain_text("never ran")
        red = expire.evaluate("e => getComputedStyle(e).backgroundColor")
        green = events.evaluate("e => getComputedStyle(e).backgroundColor")
        assert red != green

        expect(page.get_by_test_id("health-outbox")).to_contain_text("1")
        expect(page.get_by_test_id("health-webhooks-failed")).to_have_attribute("data-state", "ok")
        expect(page.get_by_test_id("health-risk-open")).to_contain_text("1")
        parked = page.get_by_test_id("health-stripe-parked")
        expect(parked).to_contain_text("2")
        expect(parked).to_have_attribute("data-state", "alert")
        screenshots(page, "health-strip-dashboard")

        values = _metrics(base)
        assert values["jifen_outbox_backlog{program=shop}"] == 1
        assert values["jifen_stripe_events_parked{program=shop}"] == 2
        assert values["jifen_risk_cases_open{program=shop}"] == 1
        assert values["jifen_job_overdue{job=expire}"] == 1
        assert values["jifen_job_lag_seconds{job=events}"] == 60

        parked.click()
        page.wait_for_url("**/admin/events/?status=parked")
        expect(page.locator("body")).to_contain_text("evt_parked_0")
        browser.close()

    watch.assert_clean()
