"""HTTP API of the alerting service (OpenAPI at /docs and /openapi.json).

No `from __future__ import annotations` in this package: FastAPI must see the real
`Annotated[..., Depends(...)]` objects of the closures, not strings.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool

from alerting import metrics
from alerting.actions import ActionError
from alerting.api.alarm_routes import alarm_router
from alerting.api.auth import Auth
from alerting.api.limits import BodyLimit, NoNulCharacters
from alerting.api.plant_routes import plant_router
from alerting.context import Clock, utc_now
from alerting.listen import ChangeListener
from alerting.settings import AlertingOptions
from alerting.store import Context

CONSOLE = Path(__file__).resolve().parent.parent / "console"


def create_app(
    pool: ConnectionPool,
    options: AlertingOptions,
    healthy: Callable[[], bool],
    ctx: Context | None = None,
    clock: Clock = utc_now,
    listener: ChangeListener | None = None,
) -> FastAPI:
    """The FastAPI application of the alerting service (the live stream wakes on
    ``listener``'s change-log notifications, else it polls)."""
    ctx = ctx or Context()
    app = FastAPI(
        title="ChemWatch alerting",
        version="0.2.0",
        description="ISA-18.2 alarm management, major-risk incidents, live stream.",
    )
    app.add_middleware(BodyLimit, max_bytes=options.max_body_bytes)
    app.add_middleware(NoNulCharacters)
    auth = Auth(pool, options.users, clock, options.session_ttl_s)
    app.include_router(alarm_router(pool, auth, ctx, options, clock))
    app.include_router(plant_router(pool, auth, ctx, clock, listener, options.sse_queue_size))

    @app.exception_handler(psycopg.DataError)
    async def data_error(_request: Request, _exc: psycopg.DataError) -> JSONResponse:
        # Input PostgreSQL cannot store (e.g. a NUL in a JSON string): the client's
        # data is at fault, so 422 rather than 500; the detail stays generic.
        return JSONResponse({"detail": "input the database cannot store"}, status_code=422)

    @app.exception_handler(ActionError)
    async def action_error(_request: Request, exc: ActionError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Any:
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.API_REQUESTS.labels(getattr(route, "path", "unmatched"), response.status_code).inc()
        return response

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> PlainTextResponse:
        """200 while consuming condition events, else 503."""
        ok = healthy()
        return PlainTextResponse("ok\n" if ok else "unhealthy\n", 200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.mount("/console", StaticFiles(directory=CONSOLE, html=True), name="console")
    return app
