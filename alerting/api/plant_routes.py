"""Login, incidents, floods, site risk, unit maintenance mode, KPIs and the live stream."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from alerting import actions, incidents, kpi, noise, sse
from alerting.api.auth import COOKIE, Auth
from alerting.context import Clock
from alerting.listen import ChangeListener
from alerting.settings import ApiUser
from alerting.store import Context


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class MaintenanceBody(BaseModel):
    maintenance: bool
    reason: str = Field(min_length=3, max_length=500)


def plant_router(
    pool: ConnectionPool,
    auth: Auth,
    ctx: Context,
    clock: Clock,
    listener: ChangeListener | None = None,
    sse_queue_size: int = sse.QUEUE_SIZE,
) -> APIRouter:
    """Routes beyond single alarms; the live stream wakes on ``listener``'s notifications."""
    router = APIRouter()
    viewer = Annotated[ApiUser, Depends(auth.require("viewer"))]
    operator = Annotated[ApiUser, Depends(auth.require("operator"))]
    supervisor = Annotated[ApiUser, Depends(auth.require("supervisor"))]
    window = Annotated[float, Query(gt=0, le=24 * 90)]
    broadcaster = sse.Broadcaster(pool, listener=listener, queue_size=sse_queue_size)

    @router.post("/login", tags=["auth"])
    def login(body: LoginBody, response: Response) -> dict[str, Any]:
        """Password login: a session token (also set as an HttpOnly cookie)."""
        user, token = auth.login(body.username, body.password)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", max_age=int(auth.ttl_s)
        )
        return {"token": token, "user": user.name, "role": user.role}

    @router.post("/logout", tags=["auth"])
    def logout(request: Request, response: Response, _user: viewer) -> dict[str, str]:
        """End the session of the cookie or bearer token used."""
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() or request.cookies.get(COOKIE, "")
        auth.logout(token)
        response.delete_cookie(COOKIE)
        return {"status": "logged out"}

    @router.get("/me", tags=["auth"])
    def me(user: viewer) -> dict[str, str]:
        """Who the caller is."""
        return {"user": user.name, "role": user.role}

    @router.get("/incidents", tags=["incidents"])
    def list_incidents(_user: viewer, all: bool = False) -> list[dict[str, Any]]:
        """Major-risk incidents, red first; open ones unless ``all=true``."""
        with pool.connection() as conn:
            return incidents.listing(conn, open_only=not all)

    @router.post("/incidents/{incident_id}/ack", tags=["incidents"])
    def ack_incident(incident_id: int, user: operator) -> dict[str, Any]:
        """Take charge of an incident (operator role or above)."""
        with pool.connection() as conn:
            row = incidents.acknowledge(conn, incident_id, user.name, clock())
        if row is None:
            raise HTTPException(404, f"no incident {incident_id}")
        return row

    @router.get("/floods", tags=["alarms"])
    def floods(_user: viewer) -> list[dict[str, Any]]:
        """Alarm floods in progress, per console, with the first-out alarm."""
        with pool.connection() as conn:
            return noise.open_floods(conn)

    @router.get("/sites/risk", tags=["incidents"])
    def site_risk(_user: viewer) -> list[dict[str, Any]]:
        """Four-colour risk level per site, with its worst hazard grade."""
        with pool.connection() as conn:
            return incidents.site_risk(conn, ctx.plant)

    @router.put("/units/{unit_id}/maintenance", tags=["alarms"])
    def maintenance(unit_id: str, body: MaintenanceBody, user: supervisor) -> dict[str, Any]:
        """Maintenance mode: the unit's alarms are suppressed by design (supervisor)."""
        with pool.connection() as conn:
            changed = actions.set_unit_maintenance(
                conn, unit_id, body.maintenance, user.name, body.reason, clock(), ctx.plant
            )
        return {"unit_id": unit_id, "maintenance": body.maintenance, "alarms_changed": changed}

    @router.get("/kpi/alarms", tags=["kpi"])
    def alarm_kpis(_user: viewer, hours: window = 24) -> dict[str, Any]:
        """Alarm rates per console, % time in flood, top-10 bad actors, standing/stale,
        priority distribution."""
        with pool.connection() as conn:
            return kpi.alarm_kpis(conn, clock(), hours)

    @router.get("/kpi/sites", tags=["kpi"])
    def site_kpis(
        _user: viewer,
        hours: window = 24,
        ack_target_s: Annotated[float, Query(gt=0)] = 600,
    ) -> list[dict[str, Any]]:
        """Per site: sensor online rate and alarm acknowledgement timeliness."""
        with pool.connection() as conn:
            return kpi.site_indicators(conn, ctx.plant, clock(), hours, ack_target_s)

    @router.get("/stream", tags=["stream"], response_class=StreamingResponse)
    def stream(
        request: Request, _user: viewer, after: Annotated[int | None, Query(ge=0)] = None
    ) -> StreamingResponse:
        """Server-sent events (``alarm``, ``incident``, ``flood``) with ids; resume
        with the Last-Event-ID header (or ``after``)."""
        start = sse.start_after(pool, request.headers.get("last-event-id"), after)
        return StreamingResponse(
            sse.events(pool, broadcaster, start, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
