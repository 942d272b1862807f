"""A member's phone over HTTP: ``POST /v1/members`` takes it (kept as digits with their
``+``), member answers carry it, a bad one is a 400 problem that writes nothing, another one
for the same member is a 409; the remote SDK's ``enrol(phone=…)`` does the same."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from loyalty.db import Database
from loyalty.errors import AlreadyExists, InvalidInput
from sdk import Jifen
from tests.http_api.conftest import new_key
from tests.http_api.live_server import live_api
from tests.integration.helpers import PROGRAM, row_counts


def test_enrol_with_a_phone_over_http(
    client: FlaskClient, auth: dict[str, str], program_db: Database
) -> None:
    body = {"member": "alice", "email": "a@shop.example", "phone": "+86 138-0013-8000"}
    r = client.post("/v1/members", json=body, headers=auth)
    assert r.status_code == 201, r.json
    assert r.json["phone"] == "+8613800138000"
    again = client.post("/v1/members", json=body, headers=auth)
    assert again.status_code == 201 and again.json == r.json
    read = client.get("/v1/members/alice", headers=auth)
    assert read.status_code == 200 and read.json["phone"] == "+8613800138000"
    other = client.post("/v1/members", json={**body, "phone": "+8613900139000"}, headers=auth)
    assert other.status_code == 409, other.json
    before = row_counts(program_db)
    bad = client.post("/v1/members", json={"member": "bob", "phone": "12-34"}, headers=auth)
    assert bad.status_code == 400 and bad.json["code"] == "invalid_input", bad.json
    assert "not a phone number" in bad.json["detail"]
    assert row_counts(program_db) == before
    plain = client.post("/v1/members", json={"member": "carol"}, headers=auth)
    assert plain.status_code == 201 and plain.json["phone"] is None


def test_the_remote_client_enrols_with_a_phone(program_db: Database) -> None:
    key = new_key(program_db, "admin")
    with live_api(program_db) as base_url, Jifen(base_url, api_key=key, program=PROGRAM) as jifen:
        alice = jifen.enrol(member="alice", phone="186 0000 1111")
        assert alice.phone == "18600001111"
        assert jifen.get_member(member="alice") == alice
        with pytest.raises(AlreadyExists):
            jifen.enrol(member="alice", phone="18600002222")
        with pytest.raises(InvalidInput) as refused:
            jifen.enrol(member="bob", phone="phone")
        assert refused.value.details.get("field") == "phone"
