"""Accounts the users register and sign in with (through the API, as a person would)."""

from __future__ import annotations

import uuid
from typing import Any

from locust.contrib.fasthttp import FastHttpSession

from ._common import settings


def sign_up(client: FastHttpSession, prefix: str) -> tuple[str, dict[str, str]]:
    """Register a fresh account and sign in; (user id, Authorization header)."""
    s = settings()
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    client.post(f"{s.api_url}/users/register", name="register",
                json={"username": name, "email": f"{name}@example.com", "password": s.password})
    with client.post(f"{s.api_url}/users/login", name="login", catch_response=True,
                     json={"login": name, "password": s.password}) as response:
        if response.status_code != 200:
            response.failure(f"HTTP {response.status_code}")
            raise RuntimeError(f"login failed: HTTP {response.status_code}")
        tokens: dict[str, Any] = response.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me: dict[str, Any] = client.get(f"{s.api_url}/users/me", name="me", headers=auth).json()
    return str(me["id"]), auth
