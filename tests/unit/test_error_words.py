"""The services' refusals in Chinese: every error code has a Chinese sentence, a known
message shape is said in full with its values, anything else keeps the English original,
and English pages show the message unchanged."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask_babel import force_locale

from admin.error_words import _BY_LENGTH, WORDS, error_text, shape_pattern
from admin.i18n import CHINESE, ENGLISH, init_i18n, read_catalogue
from loyalty import errors
from loyalty.errors import LoyaltyError

ERROR_CLASSES = sorted(
    (c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, LoyaltyError)),
    key=lambda c: c.code,
)
_HAN = re.compile(r"[\u4e00-\u9fff]")
_ASCII_WORDS = re.compile(r"[A-Za-z]{4,}")


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    init_i18n(app)
    with app.test_request_context("/"):
        yield app


def chinese(exc: LoyaltyError) -> str:
    with force_locale(CHINESE):
        return error_text(exc)


def test_there_are_55_codes_and_each_has_words() -> None:
    codes = {c.code for c in ERROR_CLASSES}
    assert len(codes) == 55
    assert codes <= set(WORDS), sorted(codes - set(WORDS))
    assert set(WORDS) <= codes, sorted(set(WORDS) - codes)


def test_every_code_has_a_sentence_that_needs_no_details() -> None:
    for code, words in WORDS.items():
        assert words.sentences and words.sentences[-1].needs == (), code


def test_every_message_is_in_the_chinese_catalogue() -> None:
    catalogue = read_catalogue(CHINESE)
    msgids = [s.msgid for w in WORDS.values() for s in w.sentences]
    msgids += [shape for w in WORDS.values() for shape in w.shapes]
    for msgid in msgids:
        found = catalogue.get(msgid)
        assert found is not None and found.string, msgid
        assert set(re.findall(r"%\(\w+\)s", msgid)) == set(
            re.findall(r"%\(\w+\)s", str(found.string))
        ), msgid


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.code)
def test_each_code_says_a_chinese_sentence_and_keeps_the_english(
    cls: type[LoyaltyError],
) -> None:
    exc = cls("something went wrong with this request")
    text = chinese(exc)
    assert _HAN.search(text), text
    assert "%(" not in text
    assert text.endswith("（原文：something went wrong with this request）")
    with force_locale(ENGLISH):
        assert error_text(exc) == "something went wrong with this request"


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.code)
def test_the_sentences_with_details_fill_every_placeholder(cls: type[LoyaltyError]) -> None:
    for sentence in WORDS[cls.code].sentences:
        details = {name: 1234 for name in sentence.needs}
        text = chinese(cls("an unusual message", **details))
        assert "%(" not in text and "%%" not in text, text
        if sentence.needs:
            assert "1,234" in text, text
            break


@pytest.mark.usefixtures("app")
def test_insufficient_points_for_a_deduction_is_said_in_full() -> None:
    exc = errors.InsufficientPoints(
        "M1 has 1,200 points that can be deducted now, not 5,000: a manual deduction never "
        "takes a balance below zero; deduct at most 1,200 points.",
        available=1200,
        requested=5000,
    )
    assert chinese(exc) == (
        "M1 现在可扣除的积分为 1,200，不足 5,000：手动扣减永远不会让余额低于零；"
        "最多扣除 1,200 积分。"
    )
    with force_locale(ENGLISH):
        assert error_text(exc) == exc.message


@pytest.mark.usefixtures("app")
def test_values_come_from_the_details_with_thousands_separators() -> None:
    exc = errors.InsufficientPoints(
        "the member has 1200 available points, 50000 are needed", available=1200, requested=50000
    )
    assert chinese(exc) == "会员可用积分为 1,200，需要 50,000。"


@pytest.mark.usefixtures("app")
def test_a_message_of_no_known_shape_keeps_its_english_after_the_sentence() -> None:
    exc = errors.InsufficientPoints("not enough, really", available=3, needed=10_000)
    assert chinese(exc) == "会员可用积分为 3，需要 10,000。（原文：not enough, really）"
    invalid = errors.InvalidInput("email must look like a@b.c", field="email")
    assert (
        chinese(invalid)
        == "“email”的值无效，没有保存任何内容。（原文：email must look like a@b.c）"
    )


@pytest.mark.usefixtures("app")
def test_states_and_lists_are_shown_in_their_words() -> None:
    exc = errors.FulfilmentConflict(
        "redemption 7 is issued; it cannot become delivered (possible: cancelled)",
        redemption="7",
        status="issued",
        target="delivered",
    )
    text = chinese(exc)
    assert text.startswith("兑换 7 当前为“")
    assert not _ASCII_WORDS.search(text), text
    final = errors.FulfilmentConflict(
        "redemption 7 is delivered; it cannot become cancelled (possible: none (it is final))",
        redemption="7",
        status="delivered",
        target="cancelled",
    )
    assert "最终状态" in chinese(final)


@pytest.mark.usefixtures("app")
def test_a_longer_shape_is_not_swallowed_by_a_shorter_one() -> None:
    exc = errors.MemberInactive(
        "member 'M1' is closed; reopen the member before adjusting their points", member="M1"
    )
    assert "请先重新开启该会员" in chinese(exc)


@pytest.mark.usefixtures("app")
def test_a_message_the_console_wrote_in_chinese_is_shown_as_it_is() -> None:
    exc = errors.InvalidInput("请选择一笔兑换")
    assert chinese(exc) == "请选择一笔兑换"
    quoted = errors.RewardNotFound("no reward '积分杯' in the catalog", reward="积分杯")
    assert chinese(quoted) == "积分商城中没有奖励 积分杯。"


def test_shapes_match_only_in_full() -> None:
    pattern = shape_pattern("no member '%(member)s' in program '%(program)s'")
    assert pattern.fullmatch("no member 'M1' in program 'shop'")
    assert not pattern.fullmatch("no member 'M1' in program 'shop'; enrol the member first")
    assert shape_pattern("%(a)s%% of %(a)s").fullmatch("5% of 5")
    assert all(_BY_LENGTH[code] for code, words in WORDS.items() if words.shapes)
