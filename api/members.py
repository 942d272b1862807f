"""`/v1/members`: enrol, read, link to Stripe, close, and member tokens."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api import schemas
from api.auth import server_key
from api.context import context, in_unit, request_target
from api.problems import JifenBlueprint
from api.responses import written
from loyalty.services.member_tokens import DEFAULT_TTL_SECONDS, MemberToken, issue_member_token
from loyalty.services.members import get_member, set_member_status
from loyalty.services.results import MemberInfo
from loyalty.stripe.onboarding import enrol_applying_parked, link_applying_parked

blp = JifenBlueprint("members", __name__, url_prefix="/v1/members", description="Members")


@blp.route("")
class Members(MethodView):
    """Enrol customers."""

    @blp.arguments(schemas.EnrolIn())
    @blp.response(201, schemas.Member)
    @blp.doc(security=[{"serverKey": ["earn"]}])
    def post(self, body: dict[str, Any]) -> Any:
        """Enrol a customer (scope `earn`); enrolling again with the same details returns
        them, other details are 409. Stripe purchases parked for them are applied."""
        program = server_key("earn").program
        onboarded = in_unit(
            lambda uow: enrol_applying_parked(
                uow,
                program=program,
                external_id=body["member"],
                email=body.get("email"),
                phone=body.get("phone"),
                stripe_customer_id=body.get("stripe_customer_id"),
            )
        )
        return written(onboarded.member, 201)


@blp.route("/<path:member>")
class OneMember(MethodView):
    """One member."""

    @blp.response(200, schemas.Member)
    @blp.doc(security=[{"serverKey": ["read"]}])
    def get(self, member: str) -> MemberInfo:
        """A member's identity and status (scope `read`)."""
        program = server_key("read").program
        return get_member(request_target(), program=program, external_id=member)


@blp.route("/<path:member>/stripe-customer")
class StripeCustomer(MethodView):
    """The member's Stripe customer."""

    @blp.arguments(schemas.LinkStripeIn())
    @blp.response(200, schemas.Member)
    @blp.doc(security=[{"serverKey": ["earn"]}])
    def post(self, body: dict[str, Any], member: str) -> Any:
        """Link (or re-link) the member to a Stripe customer (scope `earn`); purchases
        parked for it are applied."""
        program = server_key("earn").program
        onboarded = in_unit(
            lambda uow: link_applying_parked(
                uow,
                program=program,
                external_id=member,
                stripe_customer_id=body["stripe_customer_id"],
            )
        )
        return written(onboarded.member, 200)


@blp.route("/<path:member>/close")
class CloseMember(MethodView):
    """Closing a member."""

    @blp.response(200, schemas.Member)
    @blp.doc(security=[{"serverKey": ["admin"]}])
    def post(self, member: str) -> MemberInfo:
        """Close the member (scope `admin`): no more earning, spending or receiving.
        Closing a closed member answers it again."""
        program = server_key("admin").program
        return in_unit(
            lambda uow: set_member_status(uow, program=program, external_id=member, status="closed")
        )


@blp.route("/<path:member>/tokens")
class MemberTokens(MethodView):
    """Member tokens for the customer's own browser or app."""

    @blp.arguments(schemas.TokenIn())
    @blp.response(201, schemas.Token)
    @blp.doc(security=[{"serverKey": ["read"]}])
    def post(self, body: dict[str, Any], member: str) -> MemberToken:
        """A short-lived token (15 minutes by default) that can only read this member's
        balance, history and expiring points, and open the member page (scope `read`)."""
        key = server_key("read")
        return issue_member_token(
            request_target(),
            key=key,
            member=member,
            secret=context().secret,
            ttl_seconds=body.get("ttl_seconds", DEFAULT_TTL_SECONDS),
        )
