"""A member's history lines on a Chinese console page: every line ``describe`` can write
(each operation, each refund or dispute step, each entry of its own) reads in Chinese with
its ids, names and reasons kept; English pages show the services' words unchanged; a line no
template explains stays as it is."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from admin.history_words import history_words
from admin.i18n import init_i18n
from loyalty.services.queries import OPERATION_WORDS, STEP_WORDS, describe

RESULT = {"order_id": "o-1", "reversal_id": "re_9"}
ENGLISH_WORD = re.compile(r"\b(?!o\b|re\b)[a-z]{2,}\b")


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


def english_left(text: str) -> list[str]:
    """English words in ``text`` beyond the ids this test uses."""
    kept = {"o", "re", "alice", "bob", "ops", "mug", "sign_in"}
    return [w for w in ENGLISH_WORD.findall(text) if w not in kept]


def described(kind: str, entry: str = "earn", key: str = "k", **result: object) -> str:
    return describe(kind, entry, key, {**RESULT, **result}, "alice")


@pytest.mark.usefixtures("chinese")
@pytest.mark.parametrize("kind", sorted(OPERATION_WORDS))
def test_every_operation_reads_in_chinese(kind: str) -> None:
    text = history_words(described(kind))
    assert not english_left(text), text
    if "{order}" in OPERATION_WORDS[kind]:
        assert "o-1" in text
    if "{id}" in OPERATION_WORDS[kind]:
        assert "re_9" in text


@pytest.mark.usefixtures("chinese")
@pytest.mark.parametrize("step", sorted(STEP_WORDS))
@pytest.mark.parametrize("kind", ["refund", "dispute"])
def test_every_step_of_a_refund_or_dispute_reads_in_chinese(kind: str, step: str) -> None:
    text = history_words(described(kind, f"{kind}_{step}"))
    assert not english_left(text), text
    assert "：" in text and "re_9" in text


@pytest.mark.usefixtures("chinese")
@pytest.mark.parametrize(
    ("line", "chinese_line"),
    [
        (("earn_purchase", "earn", "earn:o-1", {"order_id": "o-1"}), "消费，订单 o-1"),
        (
            ("earn_purchase", "debt_repay", "earn:o-1", {"order_id": "o-1"}),
            "消费，订单 o-1：偿还欠分",
        ),
        (
            ("earn_action", "earn", "action:sign_in:2026-11-21", {"reference": "2026-11-21"}),
            "行为奖励 sign_in（2026-11-21）",
        ),
        (
            ("adjust", "adjust_grant", "a1", {"actor": "ops", "reason": "补发：双十一"}),
            "人工调整（ops）：补发：双十一",
        ),
        (
            ("transfer", "transfer_in", "t1", {"sender": "bob", "recipient": "alice"}),
            "来自 bob 的转赠",
        ),
        (
            ("transfer", "transfer_fee", "t1", {"sender": "alice", "recipient": "bob"}),
            "转赠给 bob：转赠手续费",
        ),
        (
            ("reward_redeem", "reward_spend", "r1", {"name": "Mug", "quantity": 2, "id": 7}),
            "兑换 Mug×2，兑换单 7",
        ),
        (
            ("reward_cancel", "reward_return", "r1", {"name": "Mug", "id": 7, "reason": "缺货"}),
            "兑换 Mug，兑换单 7 已取消：缺货",
        ),
    ],
)
def test_lines_with_their_parts_kept(line: tuple[object, ...], chinese_line: str) -> None:
    kind, entry, key, *rest = line
    result = rest[0] if rest else {}
    assert isinstance(result, dict)
    english = describe(str(kind), str(entry), str(key), result, "alice")
    assert history_words(english) == chinese_line


def test_english_pages_keep_the_services_words(app: Flask) -> None:
    with app.test_request_context("/?lang=en"):
        line = described("refund_succeeded", "refund_reverse")
        assert history_words(line) == line


@pytest.mark.usefixtures("chinese")
def test_a_line_no_template_explains_stays_as_it_is() -> None:
    assert history_words("something new happened") == "something new happened"
    assert history_words("") == ""
