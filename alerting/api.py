"""HTTP API of the alerting service: alarms, acknowledgement, journal, metrics, health.

No `from __future__ import annotations` here: FastAPI must see the real
`Annotated[..., Depends(...)]` objects of the closures below, not strings.
"""

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from alerting import metrics, store
from alerting.settings import ApiUser, Role

_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "supervisor": 2, "admin": 3}
_bearer = HTTPBearer(auto_error=False)


class AckRequest(BaseModel):
    comment: str = Field(default="", max_length=2000)


def create_app(
    pool: ConnectionPool, users: tuple[ApiUser, ...], healthy: Callable[[], bool]
) -> FastAPI:
    """The FastAPI application; ``users`` are the bearer tokens it accepts."""
    app = FastAPI(title="ChemWatch alerting", version="0.1.0")

    def require(role: Role) -> Callable[..., ApiUser]:
        def check(
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> ApiUser:
            if creds is None:
                raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
            for user in users:
                if hmac.compare_digest(user.token.get_secret_value(), creds.credentials):
                    if _RANK[user.role] < _RANK[role]:
                        raise HTTPException(403, f"role {user.role} may not do this (needs {role})")
                    return user
            raise HTTPException(401, "unknown bearer token", {"WWW-Authenticate": "Bearer"})

        return check

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Any]) -> Any:
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.API_REQUESTS.labels(getattr(route, "path", "unmatched"), response.status_code).inc()
        return response

    @app.get("/alarms")
    def list_alarms(
        _user: Annotated[ApiUser, Depends(require("viewer"))],
        all: bool = False,
    ) -> list[dict[str, Any]]:
        """Annunciated alarms (not NORMAL), most severe first; ``all=true`` for all."""
        with pool.connection() as conn:
            rows = store.list_alarms(conn, annunciated_only=not all)
        metrics.ANNUNCIATED.set(sum(1 for r in rows if r["state"] != "NORMAL"))
        return rows

    @app.get("/alarms/{alarm_id}/journal")
    def alarm_journal(
        alarm_id: str, _user: Annotated[ApiUser, Depends(require("viewer"))]
    ) -> list[dict[str, Any]]:
        """Every state change and operator action of one alarm, oldest first."""
        with pool.connection() as conn:
            rows = store.journal(conn, alarm_id)
        if not rows:
            raise HTTPException(404, f"no alarm {alarm_id!r}")
        return rows

    @app.post("/alarms/{alarm_id}/ack")
    def acknowledge(
        alarm_id: str, body: AckRequest, user: Annotated[ApiUser, Depends(require("operator"))]
    ) -> dict[str, Any]:
        """Acknowledge an alarm (operator role); the journal records who and why."""
        with pool.connection() as conn:
            change = store.acknowledge(conn, alarm_id, user.name, body.comment)
        if change is None:
            raise HTTPException(404, f"no alarm {alarm_id!r}")
        if change.from_state == change.to_state:
            raise HTTPException(
                409, f"alarm {alarm_id!r} is {change.to_state}: nothing to acknowledge"
            )
        return {"alarm_id": alarm_id, "from_state": change.from_state, "to_state": change.to_state}

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> PlainTextResponse:
        """200 while consuming condition events, else 503."""
        ok = healthy()
        return PlainTextResponse("ok\n" if ok else "unhealthy\n", 200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
