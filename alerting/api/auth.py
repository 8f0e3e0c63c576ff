"""Who is calling: bearer tokens from settings, or a session after a password login.

Passwords are checked against argon2 hashes (argon2-cffi); a login issues a random
session token, stored only as its SHA-256 in PostgreSQL and returned both in the
body (for API clients) and as an HttpOnly SameSite=Strict cookie (for the console,
whose EventSource cannot send headers).

No `from __future__ import annotations`: FastAPI must see real annotations.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from alerting.context import Clock
from alerting.settings import ApiUser, Role

RANK: dict[str, int] = {"viewer": 0, "operator": 1, "supervisor": 2, "admin": 3}
COOKIE = "chemwatch_session"
_bearer = HTTPBearer(auto_error=False)
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash for the ``password_hash`` setting."""
    return _hasher.hash(password)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """Authentication and role checks for the API."""

    def __init__(
        self, pool: ConnectionPool, users: tuple[ApiUser, ...], clock: Clock, ttl_s: float
    ) -> None:
        self.pool = pool
        self.users = users
        self.clock = clock
        self.ttl_s = ttl_s

    def login(self, username: str, password: str) -> tuple[ApiUser, str]:
        """Check a password; return the user and a new session token, or raise 401."""
        for user in self.users:
            if user.name == username and user.password_hash is not None:
                try:
                    _hasher.verify(user.password_hash.get_secret_value(), password)
                except (VerificationError, InvalidHashError):
                    break
                token = secrets.token_urlsafe(32)
                with self.pool.connection() as conn:
                    conn.execute("DELETE FROM api_sessions WHERE expires_at <= %s", (self.clock(),))
                    conn.execute(
                        "INSERT INTO api_sessions (token_sha256, username, role, expires_at)"
                        " VALUES (%s, %s, %s, %s)",
                        (
                            _sha(token),
                            user.name,
                            user.role,
                            self.clock() + timedelta(seconds=self.ttl_s),
                        ),
                    )
                return user, token
        raise HTTPException(401, "wrong user name or password")

    def logout(self, token: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM api_sessions WHERE token_sha256 = %s", (_sha(token),))

    def identify(self, token: str) -> ApiUser | None:
        """The user a bearer or session token belongs to."""
        for user in self.users:
            if user.token is not None and hmac.compare_digest(user.token.get_secret_value(), token):
                return user
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT username, role FROM api_sessions WHERE token_sha256 = %s"
                " AND expires_at > %s",
                (_sha(token), self.clock()),
            ).fetchone()
        if row is None:
            return None
        return ApiUser(name=row[0], role=row[1])

    def require(self, role: Role) -> Callable[..., ApiUser]:
        """A dependency: the caller, who must hold at least ``role`` (else 401/403)."""

        def check(
            request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> ApiUser:
            token = creds.credentials if creds is not None else request.cookies.get(COOKIE)
            if not token:
                raise HTTPException(
                    401, "missing bearer token or session cookie", {"WWW-Authenticate": "Bearer"}
                )
            user = self.identify(token)
            if user is None:
                raise HTTPException(401, "unknown or expired token", {"WWW-Authenticate": "Bearer"})
            if RANK[user.role] < RANK[role]:
                raise HTTPException(403, f"role {user.role} may not do this (needs {role})")
            return user

        return check
