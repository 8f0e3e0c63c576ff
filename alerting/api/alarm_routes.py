"""Alarm endpoints: list, history, journal, and the operator / supervisor actions."""

from datetime import timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from alerting import actions, metrics, store
from alerting.api.auth import RANK, Auth
from alerting.context import Clock
from alerting.settings import AlertingOptions, ApiUser
from alerting.store import Context

PriorityName = Literal["critical", "high", "medium", "low"]


class CommentBody(BaseModel):
    comment: str = Field(default="", max_length=2000)


class ShelveBody(BaseModel):
    reason: str = Field(min_length=3, max_length=500, description="why (journalled)")
    duration_s: float | None = Field(default=None, gt=0, description="default from settings")


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ServiceBody(BaseModel):
    out_of_service: bool
    reason: str = Field(min_length=3, max_length=500)


def alarm_router(
    pool: ConnectionPool, auth: Auth, ctx: Context, options: AlertingOptions, clock: Clock
) -> APIRouter:
    """Routes under /alarms and /history."""
    router = APIRouter(tags=["alarms"])
    viewer = Annotated[ApiUser, Depends(auth.require("viewer"))]
    operator = Annotated[ApiUser, Depends(auth.require("operator"))]
    supervisor = Annotated[ApiUser, Depends(auth.require("supervisor"))]

    @router.get("/alarms")
    def list_alarms(
        _user: viewer,
        all: bool = False,
        site: str | None = None,
        area: str | None = None,
        priority: Annotated[list[PriorityName] | None, Query()] = None,
        state: Annotated[list[str] | None, Query()] = None,
        category: Literal["process", "maintenance"] | None = None,
    ) -> list[dict[str, Any]]:
        """Alarms by priority (critical first), then newest first.

        Annunciated ones only (UNACK, ACKED, RTNUN) unless ``all=true``.
        """
        with pool.connection() as conn:
            rows = store.list_alarms(
                conn, not all, site, area, list(priority or []), state, category
            )
        metrics.ANNUNCIATED.set(sum(1 for r in rows if r["state"] in ("UNACK", "ACKED", "RTNUN")))
        return rows

    @router.get("/alarms/{alarm_id}")
    def get_alarm(alarm_id: str, _user: viewer) -> dict[str, Any]:
        """One alarm."""
        with pool.connection() as conn:
            row = store.get_alarm(conn, alarm_id)
        if row is None:
            raise HTTPException(404, f"no alarm {alarm_id!r}")
        return row

    @router.get("/alarms/{alarm_id}/journal")
    def alarm_journal(
        alarm_id: str, _user: viewer, occurrence: UUID | None = None
    ) -> list[dict[str, Any]]:
        """Every state change and operator action of one alarm, oldest first;
        ``occurrence`` limits it to one activation's own history."""
        with pool.connection() as conn:
            rows = store.journal(conn, alarm_id, str(occurrence) if occurrence else None)
        if not rows:
            raise HTTPException(404, f"no alarm {alarm_id!r}")
        return rows

    @router.get("/history")
    def history(
        _user: viewer,
        hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24,
        site: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Journal of all alarms over the last ``hours``, newest first."""
        with pool.connection() as conn:
            return store.history(conn, clock() - timedelta(hours=hours), site, limit)

    @router.post("/alarms/{alarm_id}/ack")
    def acknowledge(alarm_id: str, body: CommentBody, user: operator) -> dict[str, Any]:
        """Acknowledge (operator role or above); the journal records who and why."""
        with pool.connection() as conn:
            return actions.acknowledge(conn, alarm_id, user.name, body.comment, clock())

    @router.post("/alarms/{alarm_id}/shelve")
    def shelve(alarm_id: str, body: ShelveBody, user: operator) -> dict[str, Any]:
        """Shelve for a limited time with a reason; critical alarms need a supervisor."""
        duration = body.duration_s or options.default_shelve_s
        if duration > options.max_shelve_s:
            raise HTTPException(422, f"duration_s may be at most {options.max_shelve_s:g}")
        with pool.connection() as conn:
            return actions.shelve(
                conn,
                alarm_id,
                user.name,
                body.reason,
                duration,
                clock(),
                may_shelve_critical=RANK[user.role] >= RANK["supervisor"],
            )

    @router.post("/alarms/{alarm_id}/unshelve")
    def unshelve(alarm_id: str, body: CommentBody, user: operator) -> dict[str, Any]:
        """End shelving now; an alarm still active comes back unacknowledged."""
        with pool.connection() as conn:
            return actions.unshelve(conn, alarm_id, user.name, body.comment, clock())

    @router.post("/alarms/{alarm_id}/comment")
    def comment(alarm_id: str, body: NoteBody, user: operator) -> dict[str, Any]:
        """Add a comment to the alarm's journal."""
        with pool.connection() as conn:
            return actions.comment(conn, alarm_id, user.name, body.text, clock())

    @router.post("/alarms/{alarm_id}/service")
    def service(alarm_id: str, body: ServiceBody, user: supervisor) -> dict[str, Any]:
        """Take an alarm out of service (maintenance) or return it (supervisor)."""
        with pool.connection() as conn:
            return actions.set_out_of_service(
                conn, alarm_id, user.name, body.out_of_service, body.reason, clock()
            )

    return router
