"""For finance and audit: liability, breakage and fraud views (read-only), and a card's
replay checked against its hash chain."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from application.operators import Actor
from domain.apikeys import ApiKey
from entrypoints.http import responses as answers
from entrypoints.http.context import ApiContext

MarketQuery = Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")]


def routes(context: ApiContext) -> APIRouter:
    router = APIRouter()
    app = context.app
    Auditor = Annotated[ApiKey, Depends(context.scoped("audit"))]
    AlertReader = Annotated[Actor, Depends(context.operator_key("GET /v1/fraud/alerts"))]

    @router.get("/v1/liability", operation_id="liability", response_model=answers.Liability)
    async def liability(
        key: Auditor, market: MarketQuery = None, as_of: datetime | None = None,
    ) -> dict[str, Any]:
        """Outstanding balance and open cards per market, as of any past instant."""
        from projections.queries import liability as query

        return await context.call(
            lambda: query(context.fresh_views().db, as_of or app.now(), market))

    @router.get("/v1/breakage", operation_id="breakage", response_model=answers.Breakage)
    async def breakage(
        key: Auditor, market: MarketQuery = None,
        month: Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$")] = None,
    ) -> dict[str, Any]:
        from projections.queries import breakage as query

        return await context.call(lambda: query(context.fresh_views().db, market, month))

    @router.get("/v1/fraud/alerts", operation_id="fraud_alerts",
                response_model=answers.FraudAlerts)
    async def fraud_alerts(
        actor: AlertReader, since: datetime | None = None,
        rule: Annotated[str | None, Query(pattern=r"^F[1-6]$")] = None,
    ) -> dict[str, Any]:
        """Profiling results about customers: an operator's own key, every customer logged
        (R21)."""
        from projections.queries import alerts

        return await context.logged(
            actor, "fraud review", "GET alerts",
            lambda: alerts(context.fresh_views().db, since, rule),
            lambda found: (a["customer_id"] for a in found["alerts"]))

    @router.get("/v1/audit/cards/{card_id}/verify", operation_id="verify_card",
                response_model=answers.Verification)
    async def audit_verify(card_id: UUID, key: Auditor) -> dict[str, Any]:
        """Replays the card from the store, checks its hash chain and the balance view."""
        from projections.verify import verify_card

        def run() -> dict[str, Any]:
            app.card(card_id)  # unknown_card → 404
            events, problems = verify_card(app, context.fresh_views().db, card_id)
            return {"card_id": str(card_id), "events": events, "ok": not problems,
                    "problems": problems}

        return await context.call(run)

    return router
