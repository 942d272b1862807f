"""The jobs page's forecast refuses a bad ``days`` or ``page`` in the page itself: the jobs and
the forecast stay in view (the default horizon, or the days asked on their first page), the
field keeps what was typed and is marked, and the refusal says what to type, with a 400. On
SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from loyalty.db import Database
from tests.integration.helpers import earn
from tests.integration.test_console_charts_fixes import _console, _viewer

MEMBERS = [f"m-{n:02d}" for n in range(55)]


@pytest.fixture
def client(db: Database) -> FlaskClient:
    app = _console(db, *MEMBERS)
    for n, member in enumerate(MEMBERS):
        earn(db, member, f"o-{n}", 10_000 + 100 * n)
    return _viewer(app)


def _days_field(page: str) -> str:
    found = re.search(r'<input class="([^"]*)" id="days" name="days"[^>]*value="([^"]*)"', page)
    assert found, "no days field"
    return f"{found.group(1)}|{found.group(2)}"


@pytest.mark.parametrize("typed", ["0", "367", "abc", "-5", "30.5"])
def test_a_bad_days_value_is_refused_beside_the_field_with_the_default_horizon_below(
    client: FlaskClient, typed: str
) -> None:
    response = client.get(f"/admin/jobs/?days={typed}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert (
        'data-testid="forecast-refused">Not shown: days must be a whole number from 1 to 366. '
        "Below: the first rows of the next 90 days."
    ) in page
    assert _days_field(page) == f"form-control form-control-sm mr-2 jifen-w-5 is-invalid|{typed}"
    assert "over the next 90 days" in page and "rows 1–50 of 55" in page
    assert "<code>expire</code>" in page  # the jobs are still listed above the forecast
    assert 'class="navbar' in page  # inside the console, not a bare error page


def test_a_page_past_the_last_shows_the_first_rows_of_the_days_asked(
    client: FlaskClient,
) -> None:
    response = client.get("/admin/jobs/?days=120&page=3")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Not shown: page must be from 1 to 2" in page
    assert "Below: the first rows of the next 120 days." in page
    assert _days_field(page) == "form-control form-control-sm mr-2 jifen-w-5|120"
    assert "rows 1–50 of 55" in page


def test_a_good_value_has_no_refusal(client: FlaskClient) -> None:
    response = client.get("/admin/jobs/?days=120&page=2")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "forecast-refused" not in page
    assert _days_field(page) == "form-control form-control-sm mr-2 jifen-w-5|120"
    assert "rows 51–55 of 55" in page
