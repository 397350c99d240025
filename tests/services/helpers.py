from __future__ import annotations

from typing import Any

import httpx


async def register(
    api: httpx.AsyncClient, username: str = "alice", password: str = "correct horse 1"
) -> dict[str, Any]:
    r = await api.post("/api/users/register", json={
        "username": username, "email": f"{username}@example.com", "password": password,
    })
    assert r.status_code == 201, r.text
    user: dict[str, Any] = r.json()["user"]
    return user


async def login(
    api: httpx.AsyncClient, username: str = "alice", password: str = "correct horse 1"
) -> dict[str, Any]:
    r = await api.post("/api/users/login", json={"login": username, "password": password})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


async def signed_in(api: httpx.AsyncClient, username: str = "alice") -> dict[str, str]:
    """Register and log in; returns the Authorization header."""
    await register(api, username)
    tokens = await login(api, username)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "request_id"} <= set(error)
    assert error["request_id"] == r.headers["X-Request-Id"]
    if code is not None:
        assert error["code"] == code, error
    return error
