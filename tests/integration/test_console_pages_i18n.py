"""The dashboard, rules, adjustments and jobs pages, the error pages and the ledger's words in
Simplified Chinese: rule changes read naturally with weekdays by name (周六 周日) and times in
the program's zone; a campaign's weekdays are read in either language; every entry kind, job
and trigger has its words, while codes stay codes in English; refusals name their field in
the person's language; the Stripe webhook's errors stay English whatever the browser asks."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin import rules_form
from admin.job_words import JOB_SUMMARIES, JOB_WORDS, job_summary, job_word, trigger_word
from admin.ledger_words import (
    BUCKET_WORDS,
    ENTRY_KIND_WORDS,
    entry_kind_words,
    tier_change_words,
    tier_measure_words,
)
from admin.rules_words import audit_words, describe_changes
from admin.views.dashboard import duration_text, share_text
from loyalty.db import Database
from loyalty.domain.moves import ENTRY_KINDS
from loyalty.errors import InvalidRule
from loyalty.jobs import JOBS
from loyalty.services.tier_results import TierChangeInfo
from tests.integration.test_admin_support import build_app, login, post

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
CHINESE_BROWSER = "zh-CN,zh;q=0.9,en;q=0.5"
TZ = "Asia/Shanghai"
WEEKEND = {
    "name": "Weekend",
    "multiplier": "2",
    "starts_at": "2026-12-04T16:00:00+00:00",
    "ends_at": "2026-12-06T16:00:00+00:00",
    "categories": None,
    "weekdays": [5, 6],
}
BEFORE: dict[str, Any] = {
    "base_ratio": "1",
    "category_ratios": {"grocery": "0.5", "toys": "2"},
    "actions": {"sign_in": {"points": 5, "limit": 1, "period": "day"}},
    "caps": {"member_daily": None, "program_daily": 1_000_000},
    "pending_days": 0,
    "expiry": {"months": 3, "days": 0, "month_end": False},
}
AFTER: dict[str, Any] = {
    "base_ratio": "2",
    "category_ratios": {"grocery": "1", "数码": "3"},
    "campaigns": [{**WEEKEND, "categories": ["数码", "家电"]}],
    "actions": {"sign_in": {"points": 10, "limit": 2, "period": "week"}},
    "caps": {"member_daily": 5_000, "program_daily": None},
    "pending_days": 7,
    "expiry": {"months": 12, "days": 10, "month_end": True},
}


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db, JIFEN_RAISE_ERRORS=False)


def chinese(app: Flask) -> Any:
    """A request context whose language is Chinese."""
    return app.test_request_context("/?lang=zh")


def text(response: Any) -> str:
    """A page's visible text, tags and runs of spaces removed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


def chinese_client(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    client.get("/login?lang=zh")
    return client, login(client, username)


# --- rule words -----------------------------------------------------------------------------


def test_rule_changes_read_naturally_in_chinese(app: Flask) -> None:
    with chinese(app):
        lines = describe_changes(BEFORE, AFTER, currency="CNY", tz=TZ)
    assert lines == [
        "基础比例：1 → 每 1 CNY 得 2 积分",
        "品类 grocery：每 1 CNY 得 0.5 积分 → 每 1 CNY 得 1 积分",
        "删除品类 toys（原为 每 1 CNY 得 2 积分）",
        "新增品类 数码：每 1 CNY 得 3 积分",
        "新增营销活动 Weekend：×2，周六 周日，2026年12月5日 00:00–2026年12月7日 00:00 "
        "Asia/Shanghai，品类 数码、家电",
        "行为 sign_in：5 积分，每天最多 1 次 → 10 积分，每周最多 2 次",
        "会员每日上限：不设上限 → 5,000 积分",
        "计划每日发放预算：1,000,000 积分 → 不设上限",
        "待生效期：0 → 7 天",
        "积分有效期：获得后 3 个月 → 获得后 12 个月零 10 天，并延至当月月底",
    ]


def test_rule_changes_stay_english_by_default(app: Flask) -> None:
    with app.test_request_context("/"):
        lines = describe_changes(BEFORE, AFTER, currency="CNY", tz=TZ)
    assert lines[4] == (
        "campaign Weekend added: ×2, Sat Sun, Dec 5, 2026, 00:00–Dec 7, 2026, 00:00 Asia/Shanghai, "
        "categories 数码, 家电"
    )
    assert lines[5] == "action sign_in: 5 points, at most 1 per day → 10 points, at most 2 per week"
    assert lines[-1] == (
        "expiry after 3 months → after 12 months and 10 days, rounded up to the end of the month"
    )


def test_a_rules_audit_entry_reads_in_chinese(app: Flask) -> None:
    published = {"version": 3, "effective_from": "2026-12-09T16:00:00+00:00", "base_ratio": "3"}
    with chinese(app):
        publish = audit_words("rules.publish", {"version": 2}, published, currency="CNY", tz=TZ)
        cancel = audit_words("rules.cancel", published, None, currency="CNY", tz=TZ)
    assert publish == [
        "版本 2 → 3，自 2026年12月10日 00:00 Asia/Shanghai 起生效",
        "基础比例：— → 每 1 CNY 得 3 积分",
    ]
    assert cancel == [
        "版本 3 在生效前已取消；原定于 2026年12月10日 00:00 Asia/Shanghai 生效",
        "其基础比例：每 1 CNY 得 3 积分",
    ]


@pytest.mark.parametrize(
    ("typed", "days"),
    [("周六 周日", [5, 6]), ("星期一，星期天", [0, 6]), ("礼拜三", [2]), ("Sat,sunday", [5, 6])],
)
def test_campaign_weekdays_are_read_in_either_language(
    app: Flask, typed: str, days: list[int]
) -> None:
    form = {
        "camp_name": "周末",
        "camp_multiplier": "2",
        "camp_starts": "2026-12-05T00:00",
        "camp_ends": "2026-12-07T00:00",
        "camp_weekdays": typed.replace("，", ","),
    }
    from werkzeug.datastructures import MultiDict

    with chinese(app):
        rules = rules_form.rules_from_form(MultiDict(form), TZ)
        shown = rules_form.form_values(rules, TZ)["campaigns"][0]["weekdays"]
    assert rules["campaigns"][0]["weekdays"] == days
    with app.test_request_context("/"):
        english = rules_form.form_values(rules, TZ)["campaigns"][0]["weekdays"]
    names = dict(enumerate(["周一", "周二", "周三", "周四", "周五", "周六", "周日"]))
    assert shown == " ".join(names[d] for d in days)
    assert english == " ".join(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d] for d in days)


def test_a_bad_weekday_is_refused_in_chinese(app: Flask) -> None:
    from werkzeug.datastructures import MultiDict

    form = MultiDict(
        {
            "camp_name": "周末",
            "camp_starts": "2026-12-05T00:00",
            "camp_ends": "2026-12-07T00:00",
            "camp_weekdays": "周八",
        }
    )
    with chinese(app), pytest.raises(InvalidRule) as refused:
        rules_form.rules_from_form(form, TZ)
    assert refused.value.message == "营销活动 周末 的星期：'周八' 不是周一…周日或 0…6"


def test_the_rules_page_speaks_chinese(app: Flask) -> None:
    client, token = chinese_client(app, "marketing")
    page = text(client.get("/admin/rules/"))
    assert "当前生效： 版本 1 ，自" in page and "基础比例 每 1 CNY 得 1 积分" in page
    # a date inside a sentence is written the Chinese way, the time on the 24-hour clock
    assert re.search(
        r"当前生效： 版本 1 ，自 \d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d（Asia/Shanghai）起", page
    )
    assert "会员每日上限" in page and "四舍五入" in page and "每天 每周 每月 每年 累计" in page
    refused = post(client, "/admin/rules/settings", token, reminder_days="十五", rounding="floor")
    shown = text(client.get(refused.headers["Location"]))
    assert "请修改表单：" in shown and "到期前提醒天数：" in shown
    past = post(
        client, "/admin/rules/draft", token, action="preview", effective_from="2020-01-01T00:00"
    )
    assert past.status_code == 400 and "规则变更不能在过去生效" in text(past)


# --- ledger words ---------------------------------------------------------------------------


def test_every_entry_kind_has_chinese_words(app: Flask) -> None:
    with chinese(app):
        words = {kind: entry_kind_words(kind) for kind in ENTRY_KINDS}
        buckets = {code: str(word) for code, word in BUCKET_WORDS.items()}
    assert set(ENTRY_KIND_WORDS) == set(ENTRY_KINDS)
    assert all(re.search(r"[\u4e00-\u9fff]", w) for w in words.values()), words
    assert len(set(words.values())) == len(words)
    assert words["earn_pending"] == "获得积分（待生效）"
    assert buckets == {
        "available": "可用",
        "pending": "待生效",
        "held": "预留",
        "frozen": "冻结",
        "debt": "欠款",
    }
    with app.test_request_context("/"):  # in English a balance is called by its code
        assert {code: str(word) for code, word in BUCKET_WORDS.items()} == {
            code: code for code in BUCKET_WORDS
        }


def _change(**kw: Any) -> TierChangeInfo:
    at = dt.datetime(2027, 2, 28, 16, tzinfo=dt.UTC)
    fields: dict[str, Any] = {
        "member": "alice",
        "from_tier": "yinka",
        "to_tier": "jinka",
        "reason": "earn",
        "measure": 5_230,
        "tier_version": 1,
        "created_at": at,
    }
    return TierChangeInfo(**{**fields, **kw})


def test_a_tier_history_reads_in_chinese(app: Flask) -> None:
    names = {"putong": "普通会员", "yinka": "银卡", "jinka": "金卡"}
    due = dt.datetime(2027, 2, 28, 16, tzinfo=dt.UTC)
    lock = dt.datetime(2027, 5, 31, 16, tzinfo=dt.UTC)

    def words(change: TierChangeInfo, kind: str = "points") -> str:
        return tier_change_words(change, names=names, measure_kind=kind, currency="CNY", tz=TZ)

    with chinese(app):
        assert words(_change(reference="o-12")) == (
            "从银卡升至金卡：获得（订单 o-12） （定级指标 5,230 积分）"
        )
        kept = _change(from_tier="jinka", reason="evaluation", due_at=due)
        assert words(kept) == "在 2027-03-01 到期的评估中保持金卡 （定级指标 5,230 积分）"
        down = _change(from_tier="jinka", to_tier="yinka", reason="refund")
        assert words(down, "money") == "从金卡降至银卡：退款扣回了积分 （定级指标 消费 ¥52.30）"
        manual = _change(reason="manual", actor="ops", note="VIP", locked_until_at=lock)
        assert words(manual) == "由 ops 设为金卡：VIP，锁定至 2027-06-01"
        assert tier_measure_words(1, "points", "CNY") == "1 积分"


# --- jobs, the dashboard --------------------------------------------------------------------


def test_every_job_has_words_and_its_summary_in_english_is_the_specs(app: Flask) -> None:
    assert set(JOB_WORDS) == set(JOBS) == set(JOB_SUMMARIES)
    with app.test_request_context("/"):
        for name, spec in JOBS.items():
            assert job_word(name) == name
            assert str(JOB_SUMMARIES[name]) == spec.summary, f"{name}: the spec's summary moved"
        assert trigger_word("cron") == "cron"
    with chinese(app):
        assert [job_word(n) for n in ("expire", "mature", "hold_timeouts", "remind")] == [
            "过期",
            "积分生效",
            "冻结超时释放",
            "到期提醒",
        ]
        assert [job_word(n) for n in ("clear", "tiers", "events", "risk")] == [
            "年度清零",
            "等级评估",
            "事件投递",
            "风控扫描",
        ]
        assert job_summary("expire", "x") == "积分批次滚动过期"
        assert job_word("a_job_added_later") == "a_job_added_later"
        assert trigger_word("cron") == "定时"


def test_durations_and_shares_in_chinese(app: Flask) -> None:
    with chinese(app):
        assert [duration_text(s) for s in (40, 720, 11_100, 187_200)] == [
            "40 秒",
            "12 分钟",
            "3 小时 5 分钟",
            "2 天 4 小时",
        ]
        assert (share_text(93, 100), share_text(1, 1_000)) == ("93%", "<1%")


def test_the_dashboard_adjustments_and_jobs_speak_chinese(app: Flask) -> None:
    client, token = chinese_client(app, "operations")
    dashboard = text(client.get("/admin/"))
    assert "任务最近成功运行" in dashboard and "过期 从未运行" in dashboard
    assert "近 90 天每日积分：零线以上为发放" in dashboard
    made = post(
        client, "/admin/adjustments/new", token, member="alice", points="50", reason="门店补偿"
    )
    assert "调整 #1 已生效：alice +50 积分。" in text(client.get(made.headers["Location"]))
    ran = post(client, "/admin/jobs/run", token, job="mature")
    assert "积分生效 已运行：0 项，0 积分，成功" in text(client.get(ran.headers["Location"]))
    refused = client.get("/admin/jobs/?days=0")
    assert refused.status_code == 400
    assert "未显示：天数必须是 1 到 366 之间的整数。" in text(refused)


# --- error pages ----------------------------------------------------------------------------


def test_error_pages_speak_chinese_and_the_webhook_english(app: Flask) -> None:
    client, _token = chinese_client(app, "viewer")
    missing = client.get("/admin/nowhere")
    assert missing.status_code == 404
    assert "页面不存在" in text(missing) and "此地址没有页面" in text(missing)
    forbidden = client.get("/admin/adjustments/")
    assert forbidden.status_code == 403
    shown = text(forbidden)
    assert "页面 积分调整 仅对以下角色开放： 运营 或 管理员 。" in shown
    assert "角色为 只读 。" in shown
    hook = app.test_client().get("/webhooks/stripe", headers={"Accept-Language": CHINESE_BROWSER})
    assert hook.status_code == 405 and hook.json is not None
    assert hook.json["error"]["message"] == "This page does not take that kind of request."
