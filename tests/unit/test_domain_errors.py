"""The error tree that every domain function raises from."""

import pytest

from loyalty import errors
from loyalty.errors import (
    CurrencyMismatch,
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
    InvalidRule,
    LoyaltyError,
    NaiveDatetime,
    RedemptionLimit,
    RuleViolation,
)

ALL_ERRORS = [
    obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, LoyaltyError)
]


def test_every_error_has_a_unique_code():
    codes = [cls.code for cls in ALL_ERRORS]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_carries_message_details_and_serialises(cls):
    error = cls("something went wrong", field="x")
    assert str(error) == "something went wrong"
    assert error.to_dict() == {
        "error": {"code": cls.code, "message": "something went wrong", "details": {"field": "x"}}
    }


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (InvalidInput, 400),
        (InvalidAmount, 400),
        (NaiveDatetime, 400),
        (CurrencyMismatch, 400),
        (InvalidRule, 400),
        (errors.ProgramNotFound, 404),
        (errors.IdempotencyConflict, 409),
        (errors.HoldNotActive, 409),
        (RuleViolation, 422),
        (InsufficientPoints, 422),
        (RedemptionLimit, 422),
        (errors.MemberInactive, 422),
        (errors.ConfigurationError, 500),
    ],
)
def test_http_status_is_inherited_from_the_branch(cls, status):
    assert cls.http_status == status


def test_details_default_to_empty():
    assert InvalidInput("bad").details == {}
