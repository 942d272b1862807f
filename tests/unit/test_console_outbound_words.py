"""The outbound pages' words in both languages: every outbox event type has a name and a
description (in English the outbox's own), the delivery run's reasons for disabling an
endpoint and the e-mail run's reasons for skipping a reminder read in Chinese with their
times and codes kept, and marshmallow's problems are translated with their figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from flask import Flask

from admin.event_words import EVENT_DESCRIPTIONS, event_description, event_words
from admin.form_words import field_words, problem_words
from admin.i18n import init_i18n
from admin.views.reminders import email_error_words
from admin.views.webhooks_out import age_words, reason_words, state_words
from loyalty.events.endpoints import EndpointInfo
from loyalty.events.outbox import EVENT_TYPES

TZ = "Asia/Shanghai"


@pytest.fixture(scope="module")
def app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    init_i18n(app)
    return app


@pytest.fixture
def chinese(app: Flask) -> Iterator[None]:
    with app.test_request_context("/?lang=zh"):
        yield


@pytest.fixture
def english(app: Flask) -> Iterator[None]:
    with app.test_request_context("/?lang=en"):
        yield


@pytest.mark.usefixtures("english")
def test_in_english_every_event_type_reads_as_the_outbox_describes_it() -> None:
    assert set(EVENT_DESCRIPTIONS) == set(EVENT_TYPES)
    for type_, text in EVENT_TYPES.items():
        assert event_description(type_) == text[:1].upper() + text[1:]
        assert event_words(type_) and event_words(type_) != type_
    assert event_words("points.something_new") == "Points something new"


@pytest.mark.usefixtures("chinese")
def test_in_chinese_every_event_type_has_chinese_words() -> None:
    for type_ in EVENT_TYPES:
        assert not any("a" <= c.lower() <= "z" for c in event_words(type_)), type_
        assert not any("a" <= c.lower() <= "z" for c in event_description(type_)), type_
    assert event_words("points.earned") == "积分发放"


def _endpoint(**changes: object) -> EndpointInfo:
    """A disabled endpoint: the delivery run saw a 410 at 14:12 Shanghai time."""
    at = dt.datetime(2026, 11, 27, 6, 12, tzinfo=dt.UTC)
    endpoint = EndpointInfo(
        id=1,
        url="https://crm.example/hooks",
        description=None,
        event_types=("*",),
        enabled=False,
        disabled_reason="the endpoint answered 410 Gone on 2026-11-27 06:12 UTC",
        disabled_at=at,
        failing_since=None,
        created_at=at,
        updated_at=at,
        secret_hint="abcd",
        rotating_until=None,
    )
    return dataclasses.replace(endpoint, **changes)  # type: ignore[arg-type]


def test_the_delivery_runs_reasons_read_in_either_language(app: Flask) -> None:
    gone = _endpoint()
    by_hand = _endpoint(disabled_reason="CRM 迁移中 until 2026-13-45 99:99 UTC")
    failing = "failing for 5 days since 2026-11-27 06:02 UTC"
    with app.test_request_context("/?lang=en"):
        assert state_words(gone, TZ) == (
            "Disabled: the endpoint answered 410 Gone on 2026-11-27 14:12 CST"
        )
        assert reason_words(failing, TZ) == "failing for 5 days since 2026-11-27 14:02 CST"
        assert state_words(by_hand, TZ) == (
            "Disabled: CRM 迁移中 until 2026-13-45 99:99 UTC (since 2026-11-27 14:12 CST)"
        )
        assert state_words(_endpoint(disabled_reason=None), TZ).startswith("Disabled: by hand")
        assert age_words(130) == "2 min" and age_words(3 * 86400) == "3 days"
    with app.test_request_context("/?lang=zh"):
        assert state_words(gone, TZ) == "已停用：端点于 2026-11-27 14:12 CST 返回 410 Gone"
        assert reason_words(failing, TZ) == "自 2026-11-27 14:02 CST 起连续失败 5 天"
        assert state_words(by_hand, TZ) == (
            "已停用：CRM 迁移中 until 2026-13-45 99:99 UTC（自 2026-11-27 14:12 CST 起）"
        )
        assert state_words(_endpoint(enabled=True), TZ) == "已启用"
        assert age_words(130) == "2 分钟" and age_words(3 * 86400) == "3 天"


def test_the_email_runs_reasons_read_in_either_language(app: Flask) -> None:
    missing = (
        "program shop has no e-mail settings (set them in the console's Reminders page or "
        "with jifen email set)"
    )
    server = "SMTP 550 mailbox unavailable"
    with app.test_request_context("/?lang=en"):
        assert email_error_words(missing) == missing
        assert email_error_words("the member has no e-mail address") == (
            "the member has no e-mail address"
        )
    with app.test_request_context("/?lang=zh"):
        assert email_error_words(missing).startswith("积分计划 shop 尚未设置邮件")
        assert email_error_words("the member has no e-mail address") == "会员没有邮箱地址"
        assert email_error_words(server) == server  # a mail server's answer, as it is


def test_form_problems_keep_their_figures_and_names(app: Flask) -> None:
    range_problem = "Must be greater than or equal to 1 and less than or equal to 3660."
    with app.test_request_context("/?lang=en"):
        assert problem_words(range_problem) == range_problem
        assert field_words("expires_in_days") == "expires_in_days"
        assert problem_words("something else") == "something else"
    with app.test_request_context("/?lang=zh"):
        assert problem_words(range_problem) == "必须大于或等于 1 且小于或等于 3660。"
        assert problem_words("Must be one of: read, earn.") == "必须是以下之一：read, earn。"
        assert problem_words("Missing data for required field.") == "必填项缺失。"
        assert field_words("expires_in_days") == "有效天数"
        assert field_words("unknown_field") == "unknown_field"
