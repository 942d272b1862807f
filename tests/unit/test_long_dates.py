"""Dates and times in sentences: ``long_date``, ``long_time``, ``long_day`` and
``long_last_day`` write them the way the page's language does (Babel's CLDR skeletons), in
the program's time zone; tables keep ``local_time``'s ``2026-12-03 14:05``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from flask import Flask, g
from flask_babel import Babel

from admin.formatting import (
    babel_locale,
    day_words,
    init_filters,
    instant_words,
    local_time,
    long_date,
    long_day,
    long_last_day,
    long_time,
)
from admin.i18n import select_locale

UTC = dt.UTC
# 14:05 on 3 December 2026 in Shanghai (UTC+8).
AFTERNOON = dt.datetime(2026, 12, 3, 6, 5, tzinfo=UTC)
# 23:30 UTC on 2 December is already 07:30 on 3 December in Shanghai...
LATE_UTC = dt.datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
# ...and 00:10 UTC on 3 December is still 19:10 on 2 December in New York.
EARLY_UTC = dt.datetime(2026, 12, 3, 0, 10, tzinfo=UTC)


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    Babel(app, locale_selector=select_locale)
    init_filters(app)
    return app


@pytest.fixture
def chinese(app: Flask) -> Iterator[None]:
    with app.test_request_context("/?lang=zh"):
        g.jifen_timezone = "Asia/Shanghai"
        yield


@pytest.fixture
def english(app: Flask) -> Iterator[None]:
    with app.test_request_context("/?lang=en"):
        g.jifen_timezone = "Asia/Shanghai"
        yield


@pytest.mark.parametrize(
    ("lang", "locale", "day", "moment"),
    [
        ("en", "en", "Dec 3, 2026", "Dec 3, 2026, 14:05"),
        ("zh", "zh_Hans_CN", "2026年12月3日", "2026年12月3日 14:05"),
    ],
)
def test_sentences_write_dates_the_languages_way_on_a_24_hour_clock(
    app: Flask, lang: str, locale: str, day: str, moment: str
) -> None:
    with app.test_request_context(f"/?lang={lang}"):
        g.jifen_timezone = "Asia/Shanghai"
        assert babel_locale() == locale
        assert long_date(AFTERNOON) == day
        assert long_time(AFTERNOON) == moment
        assert long_day(dt.date(2026, 12, 3)) == day
        assert local_time(AFTERNOON) == "2026-12-03 14:05"  # tables keep the compact form


@pytest.mark.usefixtures("english")
def test_the_program_zone_decides_the_day_near_midnight() -> None:
    assert long_date(LATE_UTC) == "Dec 3, 2026"  # Shanghai is already on the 3rd
    assert long_time(LATE_UTC) == "Dec 3, 2026, 07:30"
    g.jifen_timezone = "America/New_York"
    assert long_date(EARLY_UTC) == "Dec 2, 2026"  # New York is still on the 2nd
    assert long_time(EARLY_UTC) == "Dec 2, 2026, 19:10"


@pytest.mark.usefixtures("chinese")
def test_chinese_near_midnight_in_another_zone() -> None:
    g.jifen_timezone = "America/New_York"
    assert long_time(EARLY_UTC) == "2026年12月2日 19:10"
    assert long_time(dt.datetime(2026, 12, 3, 4, 59, tzinfo=UTC)) == "2026年12月2日 23:59"
    assert long_time(dt.datetime(2026, 12, 3, 5, 0, tzinfo=UTC)) == "2026年12月3日 00:00"


@pytest.mark.usefixtures("english")
def test_none_is_blank() -> None:
    assert long_date(None) == long_time(None) == long_day(None) == long_last_day(None) == ""


@pytest.mark.usefixtures("english")
def test_a_date_is_written_as_it_is_and_an_instant_by_its_local_day() -> None:
    # A plain date is already local (a range bound): no zone moves it.
    g.jifen_timezone = "Pacific/Kiritimati"
    assert long_day(dt.date(2027, 1, 1)) == "Jan 1, 2027"
    # An instant given to long_day is never written as its UTC date.
    assert long_day(dt.datetime(2026, 12, 31, 11, 0, tzinfo=UTC)) == "Jan 1, 2027"


@pytest.mark.usefixtures("chinese")
def test_last_usable_day_is_the_day_before_a_local_midnight() -> None:
    ends = dt.datetime(2026, 4, 30, 16, 0, tzinfo=UTC)  # 1 May 00:00 in Shanghai
    assert long_last_day(ends) == "2026年4月30日"


def test_the_filters_are_registered_and_follow_the_page_language(app: Flask) -> None:
    page = app.jinja_env.from_string(
        "{{ at|long_time }} · {{ at|long_date }} · {{ day|long_day }} · {{ at|local_time }}"
    )
    for lang, expected in [
        ("zh", "2026年12月3日 14:05 · 2026年12月3日 · 2027年1月1日 · 2026-12-03 14:05"),
        ("en", "Dec 3, 2026, 14:05 · Dec 3, 2026 · Jan 1, 2027 · 2026-12-03 14:05"),
    ]:
        with app.test_request_context(f"/?lang={lang}"):
            g.jifen_timezone = "Asia/Shanghai"
            assert page.render(at=AFTERNOON, day=dt.date(2027, 1, 1)) == expected


@pytest.mark.parametrize(
    ("locale", "time", "expected"),
    [
        ("en", False, "Dec 3, 2026"),
        ("en", True, "Dec 3, 2026, 14:05"),
        ("zh_Hans_CN", False, "2026年12月3日"),
        ("zh_Hans_CN", True, "2026年12月3日 14:05"),
    ],
)
def test_outside_a_request_the_words_take_a_locale(locale: str, time: bool, expected: str) -> None:
    assert instant_words(AFTERNOON, "Asia/Shanghai", locale, time=time) == expected
    assert day_words(dt.date(2026, 12, 3), locale) == instant_words(
        AFTERNOON, "Asia/Shanghai", locale, time=False
    )


def test_outside_a_request_english() -> None:
    assert babel_locale() == "en"
