"""The checked-in OpenAPI document, ``api/openapi.json``, is the one the API serves, in a stable
form; every operation is under ``/v1``, needs a credential, and documents its errors as
``application/problem+json``. ``jifen api spec --check`` fails on a stale copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import api.cli
from api.cli import SPEC_FILE, spec_document
from loyalty.cli import main
from loyalty.services.api_keys import SCOPES

PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def generated() -> str:
    return spec_document()


@pytest.fixture(scope="module")
def document(generated: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(generated)
    return found


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in sorted(document["paths"].items())
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_checked_in_document_is_the_apps(generated: str) -> None:
    checked_in = SPEC_FILE.read_text(encoding="utf-8")
    assert checked_in == generated, (
        "api/openapi.json differs from the API's OpenAPI document: run `jifen api spec --write` "
        "and commit the file\n" + api.cli.spec_difference(checked_in, generated)
    )


def test_the_document_is_in_its_stable_form(generated: str, document: dict[str, Any]) -> None:
    assert generated == json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert document["openapi"] == "3.1.0"
    assert spec_document() == generated  # built twice, the same bytes


def test_every_path_is_under_v1(document: dict[str, Any]) -> None:
    assert len(document["paths"]) >= 20
    assert [p for p in document["paths"] if not p.startswith("/v1/")] == []


def test_every_operation_needs_a_credential(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"serverKey", "memberToken"}
    for method, path, operation in operations(document):
        if path == "/v1/openapi.json":
            continue  # the document itself is public
        requirements = operation.get("security") or document.get("security")
        assert requirements, f"{method} {path} has no security requirement"
        for requirement in requirements:
            assert requirement, f"{method} {path} allows anonymous calls"
            for scheme, scopes in requirement.items():
                assert scheme in schemes, (method, path, scheme)
                assert set(scopes) <= set(SCOPES), (method, path, scopes)


def test_every_error_response_is_a_problem(document: dict[str, Any]) -> None:
    shared = document["components"]["responses"]
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "default" in responses, f"{method} {path} documents no error response"
        for status, response in responses.items():
            if status != "default" and int(status) < 400:
                continue
            if "$ref" in response:
                response = shared[response["$ref"].rsplit("/", 1)[-1]]
            assert set(response.get("content", {})) == {PROBLEM}, (method, path, status)
            schema = response["content"][PROBLEM]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
    problem = document["components"]["schemas"]["Problem"]["properties"]
    assert {"code", "detail", "status", "title", "type", "request_id"} <= set(problem)


def test_check_fails_on_a_stale_copy_and_write_mends_it(
    generated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "openapi.json"
    copy.write_text(generated.replace('"title": "Jifen API"', '"title": "Old API"'), "utf-8")
    monkeypatch.setattr(api.cli, "SPEC_FILE", copy)
    runner = CliRunner()

    stale = runner.invoke(main, ["api", "spec", "--check"])
    assert stale.exit_code == 1
    assert "run `jifen api spec --write`" in stale.stderr
    assert '-    "title": "Old API",' in stale.stderr.splitlines()

    written = runner.invoke(main, ["api", "spec", "--write"])
    assert written.exit_code == 0, written.output
    assert copy.read_text("utf-8") == generated
    assert runner.invoke(main, ["api", "spec", "--check"]).exit_code == 0

    printed = runner.invoke(main, ["api", "spec"])
    assert printed.stdout == generated
    both = runner.invoke(main, ["api", "spec", "--write", "--check"])
    assert both.exit_code == 2
