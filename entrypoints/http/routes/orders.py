"""For the shop's order system: a card bought (R1-R5) and a return refunded (R16-R18)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from application.commands import PurchaseCard, RefundOrder
from application.unit_of_work import UnitOfWork
from domain.apikeys import ApiKey
from domain.ids import check_id
from entrypoints.http import responses as answers
from entrypoints.http.bodies import IdemKey, PurchaseBody, RefundBody, Simulate
from entrypoints.http.context import ApiContext
from entrypoints.http.replies import without_codes
from entrypoints.results import code_delivery_json, purchase_json, refund_json


def dry_run(model: type[answers.Answer]) -> dict[int | str, dict[str, Any]]:
    """`?simulate=true` answers 200 (nothing was created), with `simulated` true."""
    return {200: {"model": model, "description": "a dry run (simulate): nothing stored"}}


def routes(context: ApiContext) -> APIRouter:
    router = APIRouter()
    app = context.app
    Orders = Annotated[ApiKey, Depends(context.scoped("orders"))]

    @router.post("/v1/cards", status_code=201, operation_id="purchase",
                 response_model=answers.Purchase, responses=dry_run(answers.Purchase))
    async def purchase(
        request: Request, body: PurchaseBody, key: Orders,
        idempotency_key: IdemKey = None, simulate: Simulate = False,
    ) -> Response:
        """R1-R5: one card per order id (the natural idempotency key); its code shown once,
        and e-mailed to the buyer (R7): a repeat shows `code` null and says, under
        `code_delivery`, where the code went."""
        def command(uow: UnitOfWork) -> dict[str, Any]:
            done = app.purchase(PurchaseCard(**body.model_dump()), within=uow)
            return {**purchase_json(done),
                    "code_delivery": code_delivery_json(app.code_delivery(uow, done.card_id))}

        if simulate:
            done = await context.call(lambda: command(UnitOfWork(app)))
            return JSONResponse({**done, "code": None, "simulated": True}, 200)
        return await context.idempotent(request, key, idempotency_key, command, status=201)

    @router.post("/v1/refunds", status_code=201, operation_id="refund",
                 response_model=answers.Refund, responses=dry_run(answers.Refund))
    async def refund(
        request: Request, body: RefundBody, key: Orders,
        idempotency_key: IdemKey = None, simulate: Simulate = False,
    ) -> Response:
        """R16-R18: returned goods paid by card come back as a new card, the rest otherwise."""
        if body.request_id is not None:
            check_id("request_id", body.request_id)

        def command(uow: UnitOfWork) -> dict[str, Any]:
            return refund_json(app.refund(RefundOrder(
                order_id=body.order_id, returned_amount=body.amount, received_on=body.received_on,
                request_id=body.request_id, customer_id=body.customer_id,
                customer_email=body.customer_email, customer_name=body.customer_name,
            ), within=uow))

        if simulate:
            done = await context.call(lambda: command(UnitOfWork(app)))
            return JSONResponse({**without_codes(done), "simulated": True}, 200)
        return await context.idempotent(request, key, idempotency_key, command, status=201)

    return router
