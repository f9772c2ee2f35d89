"""For the shop's checkout: a code's lookup, then the hold of a card for an order (authorize,
capture, void, read)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from application.commands import AuthorizeHold, CaptureHold, LookUpCard, VoidHold
from application.results import CardLookup
from application.unit_of_work import UnitOfWork
from domain.apikeys import ApiKey
from entrypoints.http import responses as answers
from entrypoints.http.bodies import AuthorizeBody, IdemKey, LookupBody, OrderId, Simulate
from entrypoints.http.context import ApiContext
from entrypoints.results import hold_json, lookup_json, redemption_json

# OpenAPI links: a hold is named by its order id, so an authorization leads to the capture
# and the void of the same path parameter (clients and stateful tests follow them).
HOLD_LINKS = {
    name: {"operationId": name, "parameters": {"order_id": "$request.path.order_id"},
           "description": f"{name} this hold"}
    for name in ("capture", "void")
}


PONG = orjson.dumps({"status": "ok"})


def routes(context: ApiContext) -> APIRouter:
    router = APIRouter()
    app, holds, metrics, facts = context.app, context.holds, context.metrics, context.facts
    Checkout = Annotated[ApiKey, Depends(context.scoped("checkout"))]

    async def counted(
        operation: str, request: Request, key: ApiKey, idempotency_key: str | None,
        command: Callable[[UnitOfWork], dict[str, Any]], keys: list[UUID],
    ) -> Response:
        """The hold operation run once per idempotency key; a success counted in the metrics."""
        response = await context.idempotent(request, key, idempotency_key, command, keys=keys)
        if response.status_code == 200:
            metrics.holds.labels(operation).inc()
        return response

    @router.post("/v1/ping", operation_id="ping", response_model=answers.Status)
    async def ping(key: Checkout, body: LookupBody | None = None) -> Response:
        """A checkout key checked, its request (if any) read and checked as a lookup's, a
        constant answer: whether a key and a lookup request are good, and what a lookup costs
        before any card is read (the lookup's baseline in the bench)."""
        return Response(PONG, media_type="application/json")

    @router.post("/v1/cards/lookup", operation_id="lookup", response_model=answers.Lookup)
    async def lookup(body: LookupBody, key: Checkout) -> Response:
        """A code's card on this market; unknown and other-market codes are answered alike,
        and count against the customer (or this key) for R8."""
        source = str(key.key_id)
        answer: CardLookup | None = None
        if facts is not None:
            # The common case in one round trip from the event loop; whatever would write
            # (an unknown code, a locked-out subject, a hold to release) runs in full below.
            command = LookUpCard(
                code=body.code, market=body.market, source=source, customer_id=body.customer_id,
            )
            # A named customer's store id is a query: off the event loop, which serves the
            # other requests meanwhile.
            plan = (holds.plan_lookup(command) if body.customer_id is None
                    else await context.call(lambda: holds.plan_lookup(command)))
            card, counts = await facts.read(plan.code_index, plan.guards)
            answer = holds.answer_from_facts(plan, card, counts)
        if answer is None:
            answer = await context.call(lambda: holds.lookup(LookUpCard(
                code=body.code, market=body.market, customer_id=body.customer_id, source=source,
            )))
        # Bytes as they go out: the busiest call skips the response model's re-check.
        return Response(orjson.dumps(lookup_json(answer)), media_type="application/json")

    @router.post("/v1/checkouts/{order_id}/authorize", operation_id="authorize",
                 response_model=answers.Hold,
                 responses={200: {"description": "the hold (a dry run: `simulated` true)",
                                  "links": HOLD_LINKS}})
    async def authorize(
        request: Request, order_id: OrderId, body: AuthorizeBody, key: Checkout,
        idempotency_key: IdemKey = None, simulate: Simulate = False,
    ) -> Response:
        """R6, R8-R13, then the card is held for this order until captured, voided or timed
        out."""
        authorization = AuthorizeHold(
            code=body.code, market=body.market, order_id=order_id, order_total=body.order_total,
            customer_id=body.customer_id, source=str(key.key_id),
            promo_codes=tuple(body.promo_codes), contains_gift_card=body.contains_gift_cards,
        )

        def command(uow: UnitOfWork) -> dict[str, Any]:
            return hold_json(holds.authorize(authorization, simulate=simulate, within=uow))

        if simulate:
            return JSONResponse({**await context.call(lambda: command(UnitOfWork(app))),
                                 "simulated": True})
        # A named customer's store id is a query: off the event loop, as for a lookup.
        wanted = (holds.authorize_keys(authorization) if body.customer_id is None
                  else await context.call(lambda: holds.authorize_keys(authorization)))
        return await counted("authorize", request, key, idempotency_key, command, wanted)

    @router.post("/v1/checkouts/{order_id}/capture", operation_id="capture",
                 response_model=answers.Redemption)
    async def capture(
        request: Request, order_id: OrderId, key: Checkout, idempotency_key: IdemKey = None,
    ) -> Response:
        """The hold becomes the card's single use (R11: the remainder is forfeited)."""
        return await counted(
            "capture", request, key, idempotency_key,
            lambda uow: redemption_json(holds.capture(CaptureHold(order_id=order_id), within=uow)),
            holds.order_keys(order_id),
        )

    @router.post("/v1/checkouts/{order_id}/void", operation_id="void",
                 response_model=answers.Hold)
    async def void(
        request: Request, order_id: OrderId, key: Checkout, idempotency_key: IdemKey = None,
    ) -> Response:
        """Releases the hold (the bank payment failed, the cart was abandoned)."""
        return await counted(
            "void", request, key, idempotency_key,
            lambda uow: hold_json(holds.void(VoidHold(order_id=order_id), within=uow)),
            holds.order_keys(order_id),
        )

    @router.get("/v1/holds/{order_id}", operation_id="show_hold", response_model=answers.Hold,
                response_model_exclude_unset=True)
    async def read_hold(
        order_id: OrderId, key: Annotated[ApiKey, Depends(context.scoped("checkout", "support"))]
    ) -> dict[str, Any]:
        """An order's hold as of now: `held` (amount, until), `captured` or `released`."""
        return hold_json(await context.call(lambda: holds.show(order_id=order_id)))

    return router
