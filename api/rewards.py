# mypy: disallow-untyped-decorators=False
"""`/v1` reward catalog: the rewards on offer, redemptions and their fulfilment, vouchers at
the shop's checkout, and the catalog's management (``admin``: create, new terms, restock,
codes). Each calls the same service as the SDK and the console, in one unit of work per
request; a member's own token may browse, redeem for and read that member only."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api import schemas
from api.auth import member_reader, member_redeemer, server_key
from api.context import database, in_unit, request_target
from api.problems import JifenBlueprint
from api.responses import currency_of, idempotency_key, written
from loyalty.errors import InvalidInput
from loyalty.services.api_keys import ApiKeyInfo
from loyalty.services.reward_redemptions import (
    advance_fulfilment,
    cancel_redemption,
    get_redemption,
    list_redemptions,
    redeem_reward,
)
from loyalty.services.reward_results import (
    RedemptionPage,
    RewardInfo,
    RewardOffer,
    RewardRedemptionResult,
    VoucherCheck,
)
from loyalty.services.rewards import (
    add_codes,
    create_reward,
    generate_reward_codes,
    list_rewards,
    publish_reward_terms,
    restock_reward,
)
from loyalty.services.vouchers import consume_voucher, release_voucher, validate_voucher

blp = JifenBlueprint(
    "rewards", __name__, url_prefix="/v1", description="The reward catalog and vouchers"
)
MEMBER_OR_KEY_READ = [{"serverKey": ["read"]}, {"memberToken": []}]
MEMBER_OR_KEY_REDEEM = [{"serverKey": ["redeem"]}, {"memberToken": []}]
ACTOR_LENGTH = 120


def _doc(scope: str) -> Any:
    return blp.doc(security=[{"serverKey": [scope]}])


def _actor(key: ApiKeyInfo, body: dict[str, Any]) -> Any:
    """Who a change is recorded as: the one the body names, else ``api:<key label>``."""
    return body.get("actor") or f"api:{key.label}"[:ACTOR_LENGTH]


@blp.route("/rewards")
class Catalog(MethodView):
    @blp.response(200, schemas.RewardOffer(many=True))
    @_doc("read")
    def get(self) -> list[RewardOffer]:
        """The visible catalog now, without a member (scope `read`)."""
        # a list: flask-smorest reads a returned tuple as (body, status, headers)
        return list(list_rewards(database(), program=server_key("read").program))

    @blp.arguments(schemas.CreateRewardIn())
    @blp.response(201, schemas.RewardInfo)
    @_doc("admin")
    def post(self, body: dict[str, Any]) -> RewardInfo:
        """Add a reward with its first terms, in force at once (scope `admin`); a code the
        catalog has is 409. A coupon's stock is its codes: add them with `/codes`."""
        key = server_key("admin")
        return in_unit(
            lambda uow: create_reward(
                uow,
                program=key.program,
                code=body["code"],
                kind=body["kind"],
                terms=body["terms"],
                actor=_actor(key, {}),
                stock=body.get("stock"),
            )
        )


@blp.route("/rewards/<path:reward>/versions")
class RewardVersions(MethodView):
    @blp.arguments(schemas.RewardTermsIn())
    @blp.response(201, schemas.RewardInfo)
    @_doc("admin")
    def post(self, body: dict[str, Any], reward: str) -> RewardInfo:
        """Publish new terms (price, limits, window…) in force from `effective_from`
        (default now) (scope `admin`); redemptions record the version they used."""
        key = server_key("admin")
        return in_unit(
            lambda uow: publish_reward_terms(
                uow,
                program=key.program,
                reward=reward,
                terms=body["terms"],
                actor=_actor(key, {}),
                effective_from=body.get("effective_from"),
            )
        )


@blp.route("/rewards/<path:reward>/restock")
class Restock(MethodView):
    @blp.arguments(schemas.RestockIn())
    @blp.response(200, schemas.RewardInfo)
    @_doc("admin")
    def post(self, body: dict[str, Any], reward: str) -> RewardInfo:
        """Add `quantity` to a reward's stock (scope `admin`). Each call adds: it is not
        replayed, so check the stock before sending it again."""
        key = server_key("admin")
        return in_unit(
            lambda uow: restock_reward(
                uow,
                program=key.program,
                reward=reward,
                quantity=body["quantity"],
                actor=_actor(key, {}),
            )
        )


@blp.route("/rewards/<path:reward>/codes")
class RewardCodes(MethodView):
    @blp.arguments(schemas.RewardCodesIn())
    @blp.response(200, schemas.RewardInfo)
    @_doc("admin")
    def post(self, body: dict[str, Any], reward: str) -> RewardInfo:
        """Fill a coupon's pool (scope `admin`): import `codes`, or generate `count` codes
        (`length`, `alphabet`, `prefix`). A code the pool holds already is 409 and nothing
        is added."""
        key = server_key("admin")
        return in_unit(lambda uow: _fill_pool(uow, key, reward, body))


def _fill_pool(uow: Any, key: ApiKeyInfo, reward: str, body: dict[str, Any]) -> RewardInfo:
    actor = _actor(key, {})
    if body.get("codes") is not None:
        if body.get("count") is not None:
            raise InvalidInput("send codes to import or a count to generate, not both")
        return add_codes(uow, program=key.program, reward=reward, codes=body["codes"], actor=actor)
    if body.get("count") is None:
        raise InvalidInput("send codes to import or a count to generate", field="codes")
    options = {k: body[k] for k in ("length", "alphabet", "prefix") if body.get(k) is not None}
    return generate_reward_codes(
        uow, program=key.program, reward=reward, count=body["count"], actor=actor, **options
    )


@blp.route("/members/<path:member>/rewards")
class MemberRewards(MethodView):
    @blp.response(200, schemas.RewardOffer(many=True))
    @blp.doc(security=MEMBER_OR_KEY_READ)
    def get(self, member: str) -> list[RewardOffer]:
        """The catalog as the member sees it: whether they can redeem each reward now and,
        when not, why (`reasons`) (scope `read`, or the member's own token)."""
        program = member_reader(member)
        return list(list_rewards(database(), program=program, member=member))


@blp.route("/members/<path:member>/reward-redemptions")
class MemberRedemptions(MethodView):
    @blp.arguments(schemas.RedemptionArgs(), location="query")
    @blp.response(200, schemas.RedemptionPage)
    @blp.doc(security=MEMBER_OR_KEY_READ)
    def get(self, args: dict[str, Any], member: str) -> RedemptionPage:
        """A page of the member's redemptions, newest first; pass `next_cursor` as `cursor`
        (scope `read`, or the member's own token)."""
        program = member_reader(member)
        return list_redemptions(database(), program=program, member=member, **args)

    @blp.arguments(schemas.RedeemRewardIn())
    @blp.response(201, schemas.RewardRedemption)
    @blp.doc(security=MEMBER_OR_KEY_REDEEM)
    def post(self, body: dict[str, Any], member: str) -> Any:
        """Spend the member's points on a reward: the stock is taken and the code, voucher,
        item or draw issued in one transaction (scope `redeem`, or the member's own token).

        Send an `Idempotency-Key`: a retry with it answers the same redemption; without one
        every call is a new redemption."""
        program = member_redeemer(member)
        result = in_unit(
            lambda uow: redeem_reward(
                uow,
                program=program,
                member=member,
                reward=body["reward"],
                quantity=body.get("quantity", 1),
                idempotency_key=idempotency_key(),
                shipping=body.get("shipping"),
            )
        )
        return written(result, 201)


@blp.route("/reward-redemptions")
class Redemptions(MethodView):
    @blp.arguments(schemas.RedemptionArgs(), location="query")
    @blp.response(200, schemas.RedemptionPage)
    @_doc("read")
    def get(self, args: dict[str, Any]) -> RedemptionPage:
        """A page of every member's redemptions, newest first, by `reward` and `status`
        (scope `read`)."""
        return list_redemptions(database(), program=server_key("read").program, **args)


@blp.route("/reward-redemptions/<int:redemption>")
class OneRedemption(MethodView):
    @blp.response(200, schemas.RewardRedemption)
    @_doc("read")
    def get(self, redemption: int) -> RewardRedemptionResult:
        """A redemption with its codes, vouchers, draw, prize and events (scope `read`)."""
        program = server_key("read").program
        return get_redemption(database(), program=program, redemption=redemption)


@blp.route("/reward-redemptions/<int:redemption>/cancel")
class CancelRedemption(MethodView):
    @blp.arguments(schemas.CancelRedemptionIn())
    @blp.response(200, schemas.RewardRedemption)
    @_doc("redeem")
    def post(self, body: dict[str, Any], redemption: int) -> Any:
        """Cancel a redemption not yet delivered (or a coupon or voucher not used): the
        points go back into the lots they came from and the stock back to the reward
        (scope `redeem`)."""
        key = server_key("redeem")
        result = in_unit(
            lambda uow: cancel_redemption(
                uow,
                program=key.program,
                redemption=redemption,
                reason=body["reason"],
                actor=_actor(key, body),
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 200)


@blp.route("/reward-redemptions/<int:redemption>/fulfilment")
class Fulfilment(MethodView):
    @blp.arguments(schemas.FulfilmentIn())
    @blp.response(200, schemas.RewardRedemption)
    @_doc("admin")
    def post(self, body: dict[str, Any], redemption: int) -> Any:
        """Move an item's redemption to `packing`, `shipped` or `delivered` (scope `admin`);
        asking for the state it is in answers it again. Cancel with `/cancel`."""
        key = server_key("admin")
        result = in_unit(
            lambda uow: advance_fulfilment(
                uow,
                program=key.program,
                redemption=redemption,
                status=body["status"],
                actor=_actor(key, body),
                reason=body.get("reason"),
            )
        )
        return written(result, 200)


@blp.route("/vouchers/<string:code>/validate")
class ValidateVoucher(MethodView):
    @blp.arguments(schemas.VoucherOrderIn())
    @blp.response(200, schemas.VoucherCheck)
    @_doc("redeem")
    def post(self, body: dict[str, Any], code: str) -> VoucherCheck:
        """What a voucher would take off an order now (scope `redeem`); writes nothing."""
        program = server_key("redeem").program
        return validate_voucher(
            request_target(),
            program=program,
            code=code,
            order_total_minor=body["order_total_minor"],
            currency=currency_of(program, body.get("currency")),
            member=body.get("member"),
        )


@blp.route("/vouchers/<string:code>/consume")
class ConsumeVoucher(MethodView):
    @blp.arguments(schemas.ConsumeVoucherIn())
    @blp.response(200, schemas.VoucherCheck)
    @_doc("redeem")
    def post(self, body: dict[str, Any], code: str) -> Any:
        """Use a voucher on an order (scope `redeem`); again on the same order answers the
        first use, on another order it is `voucher_not_usable`."""
        program = server_key("redeem").program
        currency = currency_of(program, body.get("currency"))
        result = in_unit(
            lambda uow: consume_voucher(
                uow,
                program=program,
                code=code,
                order_id=body["order_id"],
                order_total_minor=body["order_total_minor"],
                currency=currency,
                member=body.get("member"),
            )
        )
        return written(result, 200)


@blp.route("/vouchers/<string:code>/release")
class ReleaseVoucher(MethodView):
    @blp.arguments(schemas.ReleaseVoucherIn())
    @blp.response(200, schemas.VoucherCheck)
    @_doc("redeem")
    def post(self, body: dict[str, Any], code: str) -> Any:
        """The order that used the voucher was refunded or cancelled: the voucher can be
        used again until it expires (scope `redeem`)."""
        program = server_key("redeem").program
        result = in_unit(
            lambda uow: release_voucher(uow, program=program, code=code, order_id=body["order_id"])
        )
        return written(result, 200)
