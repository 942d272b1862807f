"""`/v1` writes of points: quotes, earnings, holds, refunds, disputes, transfers,
adjustments. Each calls the same service as the SDK, in one unit of work per request."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api import schemas
from api.auth import server_key
from api.context import context, in_unit, request_target
from api.problems import JifenBlueprint
from api.responses import currency_of, idempotency_key, written
from loyalty import services as core
from loyalty.services.approvals import adjust_within_threshold
from loyalty.services.results import EarnQuote, RedemptionQuote
from loyalty.services.transfers import transfer_points

blp = JifenBlueprint(
    "points", __name__, url_prefix="/v1", description="Earning and spending points"
)


def _doc(scope: str) -> Any:
    return blp.doc(security=[{"serverKey": [scope]}])


def _lines(body: dict[str, Any]) -> Any:
    return body.get("lines")


@blp.route("/quotes/earn")
class QuoteEarn(MethodView):
    @blp.arguments(schemas.QuoteEarnIn())
    @blp.response(200, schemas.EarnQuote)
    @_doc("read")
    def post(self, body: dict[str, Any]) -> EarnQuote:
        """What an order would earn now (scope `read`); writes nothing."""
        program = server_key("read").program
        return core.quote_purchase(
            request_target(),
            program=program,
            currency=currency_of(program, body.get("currency")),
            amount_minor=body.get("amount_minor"),
            lines=_lines(body),
            paid_with_points_minor=body.get("paid_with_points_minor", 0),
            member=body.get("member"),
        )


@blp.route("/quotes/redemption")
class QuoteRedemption(MethodView):
    @blp.arguments(schemas.QuoteRedemptionIn())
    @blp.response(200, schemas.RedemptionQuote)
    @_doc("read")
    def post(self, body: dict[str, Any]) -> RedemptionQuote:
        """How many of the member's points may pay for an order (scope `read`)."""
        program = server_key("read").program
        return core.quote_redemption(
            request_target(),
            program=program,
            member=body["member"],
            order_total_minor=body["order_total_minor"],
            currency=currency_of(program, body.get("currency")),
        )


@blp.route("/earnings/purchase")
class EarnPurchase(MethodView):
    @blp.arguments(schemas.EarnPurchaseIn())
    @blp.response(201, schemas.EarnResult)
    @_doc("earn")
    def post(self, body: dict[str, Any]) -> Any:
        """Credit the points a paid order earns, once per order (scope `earn`). `location`
        and `device` name where it was earned, for risk control's velocity rules; a `block`
        rule may refuse the earn (`risk_blocked`), a frozen account always does
        (`member_frozen`)."""
        program = server_key("earn").program
        currency = currency_of(program, body.get("currency"))
        result = in_unit(
            lambda uow: core.earn_purchase(
                uow,
                program=program,
                member=body["member"],
                order_id=body["order_id"],
                currency=currency,
                amount_minor=body.get("amount_minor"),
                lines=_lines(body),
                paid_with_points_minor=body.get("paid_with_points_minor", 0),
                idempotency_key=idempotency_key(),
                location=body.get("location"),
                device=body.get("device"),
            )
        )
        return written(result, 201)


@blp.route("/earnings/action")
class EarnAction(MethodView):
    @blp.arguments(schemas.EarnActionIn())
    @blp.response(201, schemas.EarnResult)
    @_doc("earn")
    def post(self, body: dict[str, Any]) -> Any:
        """Credit a named action's fixed points within its limit (scope `earn`); `location`
        and `device` as for a purchase."""
        program = server_key("earn").program
        result = in_unit(
            lambda uow: core.earn_action(
                uow,
                program=program,
                member=body["member"],
                action=body["action"],
                reference=body["reference"],
                idempotency_key=idempotency_key(),
                location=body.get("location"),
                device=body.get("device"),
            )
        )
        return written(result, 201)


@blp.route("/holds")
class Holds(MethodView):
    @blp.arguments(schemas.HoldIn())
    @blp.response(201, schemas.HoldResult)
    @_doc("redeem")
    def post(self, body: dict[str, Any]) -> Any:
        """Reserve points to pay part of an order (scope `redeem`); then capture or
        release it."""
        program = server_key("redeem").program
        currency = currency_of(program, body.get("currency"))
        result = in_unit(
            lambda uow: core.hold_points(
                uow,
                program=program,
                member=body["member"],
                order_id=body["order_id"],
                points=body["points"],
                order_total_minor=body["order_total_minor"],
                currency=currency,
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 201)


@blp.route("/holds/<path:order_id>/capture")
class Capture(MethodView):
    @blp.response(200, schemas.HoldResult)
    @_doc("redeem")
    def post(self, order_id: str) -> Any:
        """The payment succeeded: spend the order's held points (scope `redeem`)."""
        program = server_key("redeem").program
        result = in_unit(
            lambda uow: core.capture_hold(
                uow, program=program, order_id=order_id, idempotency_key=idempotency_key()
            )
        )
        return written(result, 200)


@blp.route("/holds/<path:order_id>/release")
class Release(MethodView):
    @blp.response(200, schemas.HoldResult)
    @_doc("redeem")
    def post(self, order_id: str) -> Any:
        """The payment failed: give the order's held points back (scope `redeem`)."""
        program = server_key("redeem").program
        result = in_unit(
            lambda uow: core.release_hold(
                uow, program=program, order_id=order_id, idempotency_key=idempotency_key()
            )
        )
        return written(result, 200)


@blp.route("/refunds")
class Refunds(MethodView):
    @blp.arguments(schemas.RefundIn())
    @blp.response(201, schemas.ReversalResult)
    @_doc("refund")
    def post(self, body: dict[str, Any]) -> Any:
        """A refund of part of an order: its share of the points is frozen (scope
        `refund`); `succeeded: true` reverses them at once."""
        program = server_key("refund").program
        currency = currency_of(program, body.get("currency"))
        result = in_unit(
            lambda uow: core.refund_order(
                uow,
                program=program,
                order_id=body["order_id"],
                refund_id=body["refund_id"],
                amount_minor=body["amount_minor"],
                currency=currency,
                succeeded=body.get("succeeded", False),
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 201)


@blp.route("/refunds/<path:refund_id>/complete")
class CompleteRefund(MethodView):
    @blp.response(200, schemas.ReversalResult)
    @_doc("refund")
    def post(self, refund_id: str) -> Any:
        """The refund went through: reverse its frozen points (scope `refund`)."""
        program = server_key("refund").program
        result = in_unit(
            lambda uow: core.complete_refund(
                uow, program=program, refund_id=refund_id, idempotency_key=idempotency_key()
            )
        )
        return written(result, 200)


@blp.route("/refunds/<path:refund_id>/fail")
class FailRefund(MethodView):
    @blp.response(200, schemas.ReversalResult)
    @_doc("refund")
    def post(self, refund_id: str) -> Any:
        """The refund failed: its frozen points go back (scope `refund`)."""
        program = server_key("refund").program
        result = in_unit(
            lambda uow: core.fail_refund(
                uow, program=program, refund_id=refund_id, idempotency_key=idempotency_key()
            )
        )
        return written(result, 200)


@blp.route("/disputes")
class Disputes(MethodView):
    @blp.arguments(schemas.DisputeIn())
    @blp.response(201, schemas.ReversalResult)
    @_doc("refund")
    def post(self, body: dict[str, Any]) -> Any:
        """A chargeback of part of an order: its share of the points is frozen (scope
        `refund`)."""
        program = server_key("refund").program
        currency = currency_of(program, body.get("currency"))
        result = in_unit(
            lambda uow: core.open_dispute(
                uow,
                program=program,
                order_id=body["order_id"],
                dispute_id=body["dispute_id"],
                amount_minor=body["amount_minor"],
                currency=currency,
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 201)


@blp.route("/disputes/<path:dispute_id>/close")
class CloseDispute(MethodView):
    @blp.arguments(schemas.CloseDisputeIn())
    @blp.response(200, schemas.ReversalResult)
    @_doc("refund")
    def post(self, body: dict[str, Any], dispute_id: str) -> Any:
        """The dispute closed: lost reverses the frozen points, won releases them (scope
        `refund`)."""
        program = server_key("refund").program
        result = in_unit(
            lambda uow: core.close_dispute(
                uow,
                program=program,
                dispute_id=dispute_id,
                won=body["won"],
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 200)


@blp.route("/transfers")
class Transfers(MethodView):
    @blp.arguments(schemas.TransferIn())
    @blp.response(201, schemas.TransferResult)
    @_doc("transfer")
    def post(self, body: dict[str, Any]) -> Any:
        """Give points to another member; the program's limits and fee apply (scope
        `transfer`)."""
        program = server_key("transfer").program
        result = in_unit(
            lambda uow: transfer_points(
                uow,
                program=program,
                sender=body["sender"],
                recipient=body["recipient"],
                points=body["points"],
                transfer_id=body["transfer_id"],
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 201)


@blp.route("/adjustments")
class Adjustments(MethodView):
    @blp.arguments(schemas.AdjustIn())
    @blp.response(201, schemas.AdjustmentResult)
    @_doc("adjust")
    def post(self, body: dict[str, Any]) -> Any:
        """Grant (> 0) or deduct (< 0) points by hand with a reason (scope `adjust`).

        Adjustments larger than the approval threshold (1,000 points by default) need a
        second person: they are refused with `approval_required` and should be requested
        in the console."""
        key = server_key("adjust")
        result = in_unit(
            lambda uow: adjust_within_threshold(
                uow,
                program=key.program,
                member=body["member"],
                points=body["points"],
                reason=body["reason"],
                adjustment_id=body["adjustment_id"],
                actor=body.get("actor") or f"api key {key.prefix}",
                threshold=context().approval_threshold,
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 201)
