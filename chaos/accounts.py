"""Accounts and streams the drills make through the platform's API (as users would)."""

from __future__ import annotations

import httpx

PASSWORD = "pass word 1"


async def sign_in(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Register `username` (already there is fine) and log in; the auth header."""
    await client.post("/api/users/register", json={
        "username": username, "email": f"{username}@example.com", "password": PASSWORD})
    login = await client.post("/api/users/login", json={"login": username, "password": PASSWORD})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def start_stream(
    client: httpx.AsyncClient, auth: dict[str, str], title: str
) -> tuple[str, str]:
    """Start a stream as the signed-in user: (stream id, stream key)."""
    started = await client.post("/api/streams/start", headers=auth,
                                json={"title": title, "category": "test"})
    started.raise_for_status()
    body = started.json()
    return str(body["stream"]["id"]), str(body["stream_key"])
