# mypy: disallow-untyped-decorators=False
"""`/v1` outbound events and webhook endpoints.

The events feed (scope ``events``) serves the program's outbox oldest first, each item the
exact body a webhook receiver gets, so a shop can poll instead of receiving webhooks or
catch up after an outage (:mod:`loyalty.events.feed`). The program's webhook endpoints
(scope ``webhooks``) can be listed, added (the signing secret is in the 201 answer, once),
changed, have their secret rotated, be disabled and enabled; their deliveries are listed and
failed ones sent again, singly or in bulk (:mod:`loyalty.events.endpoints`,
:mod:`loyalty.events.delivery`). Member tokens reach none of it.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api import schemas
from api.auth import server_key
from api.context import database, in_unit
from api.problems import JifenBlueprint
from api.responses import moment_in
from loyalty.errors import WebhookEndpointNotFound
from loyalty.events import delivery
from loyalty.events import endpoints as hooks
from loyalty.events.delivery import DeliveryInfo
from loyalty.events.endpoints import EndpointCreated, EndpointInfo
from loyalty.events.feed import Event, EventPage, get_event, list_events
from loyalty.events.outbox import envelope
from loyalty.services.api_keys import ApiKeyInfo

blp = JifenBlueprint(
    "events", __name__, url_prefix="/v1", description="Outbound events and webhook endpoints"
)
READ_EVENTS = "events"
MANAGE_WEBHOOKS = "webhooks"
ACTOR_LENGTH = 120
NO_STORE = {"Cache-Control": "no-store"}  # an answer that shows a signing secret
MAX_ENDPOINT = 2**31 - 1  # the largest id the endpoints table holds


def _doc(scope: str) -> Any:
    return blp.doc(security=[{"serverKey": [scope]}])


def _actor(key: ApiKeyInfo) -> str:
    return f"api:{key.label}"[:ACTOR_LENGTH]


def _envelope(event: Event) -> dict[str, Any]:
    """The event as a receiver gets it (the same function builds the webhook body)."""
    return envelope(event.id, event.type, event.timestamp, event.data)


def _endpoint(program: str, endpoint: int) -> int:
    """An endpoint id from the path; one beyond any the table can hold has no endpoint."""
    if endpoint > MAX_ENDPOINT:
        raise WebhookEndpointNotFound(
            f"no webhook endpoint {endpoint:.0f} in program {program}", endpoint=endpoint
        )
    return endpoint


# --- the events feed ------------------------------------------------------------------------


@blp.route("/events")
class Events(MethodView):
    @blp.arguments(schemas.EventsArgs(), location="query")
    @blp.response(200, schemas.EventPage)
    @_doc(READ_EVENTS)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The program's events after `after` (from the first when absent), oldest first,
        of `type` and `member` when given (scope `events`). Each item is exactly the body a
        webhook receiver gets. Keep `next_after` and pass it as `after` to poll: no event is
        missed or served twice, also while events are being written."""
        program = server_key(READ_EVENTS).program
        page: EventPage = list_events(database(), program=program, **args)
        return {
            "items": [_envelope(e) for e in page.items],
            "next_after": page.next_after,
            "has_more": page.has_more,
        }


@blp.route("/events/<path:event_id>")
class OneEvent(MethodView):
    @blp.response(200, schemas.Event)
    @_doc(READ_EVENTS)
    def get(self, event_id: str) -> dict[str, Any]:
        """One event, exactly the body a webhook receiver gets for it (scope `events`)."""
        program = server_key(READ_EVENTS).program
        return _envelope(get_event(database(), program=program, event_id=event_id))


# --- webhook endpoints ----------------------------------------------------------------------


@blp.route("/webhook-endpoints")
class WebhookEndpoints(MethodView):
    @blp.response(200, schemas.WebhookEndpoint(many=True))
    @_doc(MANAGE_WEBHOOKS)
    def get(self) -> list[EndpointInfo]:
        """The program's webhook endpoints with their delivery counts; secrets are shown by
        their last characters only (scope `webhooks`)."""
        return list(hooks.list_endpoints(database(), program=server_key(MANAGE_WEBHOOKS).program))

    @blp.arguments(schemas.WebhookEndpointIn())
    @blp.response(201, schemas.WebhookEndpointCreated)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, body: dict[str, Any]) -> tuple[EndpointCreated, int, dict[str, str]]:
        """Add an endpoint (scope `webhooks`). The answer holds its signing `secret`
        (`whsec_…`), shown this once: keep it to verify deliveries. An address in a private
        network is refused unless the program allows it."""
        key = server_key(MANAGE_WEBHOOKS)
        types = body.get("event_types")
        created = in_unit(
            lambda uow: hooks.add_endpoint(
                uow,
                program=key.program,
                url=body["url"],
                description=body.get("description"),
                actor=_actor(key),
                **({} if types is None else {"event_types": types}),
            )
        )
        return created, 201, NO_STORE


@blp.route("/webhook-endpoints/<int:endpoint>")
class WebhookEndpoint(MethodView):
    @blp.response(200, schemas.WebhookEndpoint)
    @_doc(MANAGE_WEBHOOKS)
    def get(self, endpoint: int) -> EndpointInfo:
        """One endpoint with its delivery counts (scope `webhooks`)."""
        program = server_key(MANAGE_WEBHOOKS).program
        return hooks.get_endpoint(
            database(), program=program, endpoint=_endpoint(program, endpoint)
        )

    @blp.arguments(schemas.WebhookEndpointChangeIn())
    @blp.response(200, schemas.WebhookEndpoint)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, body: dict[str, Any], endpoint: int) -> EndpointInfo:
        """Change the endpoint's `url`, `event_types` or `description`; what is left out
        stays (scope `webhooks`). Only events dispatched from now on follow new types; a new
        URL is checked as a new endpoint's."""
        key = server_key(MANAGE_WEBHOOKS)
        endpoint = _endpoint(key.program, endpoint)
        return in_unit(
            lambda uow: hooks.update_endpoint(
                uow,
                program=key.program,
                endpoint=endpoint,
                url=body.get("url"),
                event_types=body.get("event_types"),
                description=body.get("description"),
                actor=_actor(key),
            )
        )


@blp.route("/webhook-endpoints/<int:endpoint>/rotate")
class RotateSecret(MethodView):
    @blp.response(200, schemas.WebhookEndpointCreated)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, endpoint: int) -> tuple[EndpointCreated, int, dict[str, str]]:
        """Give the endpoint a new signing secret, shown this once (scope `webhooks`); the
        previous one keeps signing beside it for 24 hours, so receivers can switch."""
        key = server_key(MANAGE_WEBHOOKS)
        endpoint = _endpoint(key.program, endpoint)
        rotated = in_unit(
            lambda uow: hooks.rotate_secret(
                uow, program=key.program, endpoint=endpoint, actor=_actor(key)
            )
        )
        return rotated, 200, NO_STORE


@blp.route("/webhook-endpoints/<int:endpoint>/disable")
class DisableEndpoint(MethodView):
    @blp.arguments(schemas.DisableEndpointIn())
    @blp.response(200, schemas.WebhookEndpoint)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, body: dict[str, Any], endpoint: int) -> EndpointInfo:
        """Stop sending to the endpoint (scope `webhooks`); its pending deliveries become
        failed, to be replayed once it is enabled again."""
        key = server_key(MANAGE_WEBHOOKS)
        endpoint = _endpoint(key.program, endpoint)
        return in_unit(
            lambda uow: hooks.disable_endpoint(
                uow,
                program=key.program,
                endpoint=endpoint,
                reason=body["reason"],
                actor=_actor(key),
            )
        )


@blp.route("/webhook-endpoints/<int:endpoint>/enable")
class EnableEndpoint(MethodView):
    @blp.response(200, schemas.WebhookEndpoint)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, endpoint: int) -> EndpointInfo:
        """Send to the endpoint again (scope `webhooks`); new events reach it, failed
        deliveries wait for a replay."""
        key = server_key(MANAGE_WEBHOOKS)
        endpoint = _endpoint(key.program, endpoint)
        return in_unit(
            lambda uow: hooks.enable_endpoint(
                uow, program=key.program, endpoint=endpoint, actor=_actor(key)
            )
        )


@blp.route("/webhook-endpoints/<int:endpoint>/replay")
class ReplayEndpoint(MethodView):
    @blp.arguments(schemas.ReplayIn())
    @blp.response(200, schemas.Replayed)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, body: dict[str, Any], endpoint: int) -> dict[str, int]:
        """Send the endpoint's failed deliveries again from the start, those last tried
        since `since` when given (scope `webhooks`); answers how many. The endpoint must be
        enabled."""
        key = server_key(MANAGE_WEBHOOKS)
        return _replay(key, _endpoint(key.program, endpoint), body)


# --- deliveries -----------------------------------------------------------------------------


@blp.route("/webhook-deliveries")
class WebhookDeliveries(MethodView):
    @blp.arguments(schemas.DeliveriesArgs(), location="query")
    @blp.response(200, schemas.WebhookDelivery(many=True))
    @_doc(MANAGE_WEBHOOKS)
    def get(self, args: dict[str, Any]) -> list[DeliveryInfo]:
        """The program's webhook deliveries, newest first, of one `endpoint` and `status`
        when given; pass the last one's id as `before` for older ones (scope `webhooks`)."""
        program = server_key(MANAGE_WEBHOOKS).program
        if args["endpoint"] is not None:
            args["endpoint"] = _endpoint(program, args["endpoint"])
        return list(delivery.list_deliveries(database(), program=program, **args))


@blp.route("/webhook-deliveries/replay")
class ReplayDeliveries(MethodView):
    @blp.arguments(schemas.ReplayIn())
    @blp.response(200, schemas.Replayed)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, body: dict[str, Any]) -> dict[str, int]:
        """Send every failed delivery of the program's enabled endpoints again from the
        start, those last tried since `since` when given (scope `webhooks`); answers how
        many."""
        return _replay(server_key(MANAGE_WEBHOOKS), None, body)


@blp.route("/webhook-deliveries/<int:delivery_id>/replay")
class ReplayDelivery(MethodView):
    @blp.response(200, schemas.WebhookDelivery)
    @_doc(MANAGE_WEBHOOKS)
    def post(self, delivery_id: int) -> DeliveryInfo:
        """Send one failed delivery again from the start (scope `webhooks`); one that is not
        failed, or whose endpoint is disabled, is 409."""
        key = server_key(MANAGE_WEBHOOKS)
        return in_unit(
            lambda uow: delivery.replay_delivery(
                uow, program=key.program, delivery=delivery_id, actor=_actor(key)
            )
        )


def _replay(key: ApiKeyInfo, endpoint: int | None, body: dict[str, Any]) -> dict[str, int]:
    since = moment_in(body, "since")
    count = in_unit(
        lambda uow: delivery.replay_failed(
            uow, program=key.program, endpoint=endpoint, since=since, actor=_actor(key)
        )
    )
    return {"replayed": count}
