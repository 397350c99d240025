"""Accounts: register, login, refresh, profiles; the rules and their error answers."""

from __future__ import annotations

import httpx
import trio

from .helpers import assert_error, login, register, signed_in


async def test_register_login_profile(api: httpx.AsyncClient) -> None:
    user = await register(api, "Alice")
    assert user["username"] == "Alice"
    assert user["email"] == "alice@example.com"
    assert user["display_name"] == "Alice"
    assert "password" not in str(user) and "hash" not in str(user)

    tokens = await login(api, "alice")  # usernames are case-insensitive at login
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}

    me = (await api.get("/api/users/me", headers=auth)).json()
    assert me["id"] == user["id"] and me["email"] == "alice@example.com"

    r = await api.patch("/api/users/me", headers=auth,
                        json={"display_name": "  Alice A. ", "bio": "hi\nthere"})
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "Alice A." and r.json()["bio"] == "hi\nthere"

    public = (await api.get(f"/api/users/{user['id']}")).json()
    assert public["display_name"] == "Alice A." and public["email"] is None


async def test_login_by_email_any_case(api: httpx.AsyncClient) -> None:
    await register(api, "bob")
    r = await api.post("/api/users/login",
                       json={"login": "BOB@Example.COM", "password": "correct horse 1"})
    assert r.status_code == 200, r.text


async def test_username_and_email_unique_ignoring_case(api: httpx.AsyncClient) -> None:
    await register(api, "carol")
    r = await api.post("/api/users/register", json={
        "username": "CAROL", "email": "other@example.com", "password": "password 123"})
    assert_error(r, 409, "username_taken")
    r = await api.post("/api/users/register", json={
        "username": "carol2", "email": "Carol@EXAMPLE.com", "password": "password 123"})
    assert_error(r, 409, "email_taken")


async def test_wrong_password_and_unknown_user_look_alike(api: httpx.AsyncClient) -> None:
    await register(api, "dave")
    wrong = await api.post("/api/users/login", json={"login": "dave", "password": "nope nope"})
    unknown = await api.post("/api/users/login", json={"login": "zed", "password": "nope nope"})
    assert assert_error(wrong, 401, "invalid_credentials")["message"] == assert_error(
        unknown, 401, "invalid_credentials")["message"]


async def test_refresh_rotates_and_reuse_revokes(api: httpx.AsyncClient) -> None:
    await register(api, "erin")
    first = await login(api, "erin")
    r = await api.post("/api/users/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    # Reusing the first token (theft) fails and revokes the second one too.
    r = await api.post("/api/users/refresh", json={"refresh_token": first["refresh_token"]})
    assert_error(r, 401, "invalid_refresh_token")
    r = await api.post("/api/users/refresh", json={"refresh_token": second["refresh_token"]})
    assert_error(r, 401, "invalid_refresh_token")


async def test_logout_revokes_refresh_token(api: httpx.AsyncClient) -> None:
    await register(api, "fay")
    tokens = await login(api, "fay")
    r = await api.post("/api/users/logout", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200 and r.json() == {"signed_out": True}
    r = await api.post("/api/users/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(r, 401, "invalid_refresh_token")


async def test_change_email_needs_current_password(api: httpx.AsyncClient) -> None:
    auth = await signed_in(api, "gus")
    r = await api.patch("/api/users/me", headers=auth, json={"email": "g@example.org"})
    assert_error(r, 400, "validation_error")
    r = await api.patch("/api/users/me", headers=auth,
                        json={"email": "g@example.org", "current_password": "wrong one"})
    assert_error(r, 403, "invalid_credentials")
    r = await api.patch("/api/users/me", headers=auth, json={
        "email": "G@Example.org", "password": "new password 9",
        "current_password": "correct horse 1"})
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "g@example.org"
    await login(api, "gus", "new password 9")


async def test_register_validation_messages(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/users/register", json={
        "username": "x", "email": "not-an-email", "password": "short"})
    error = assert_error(r, 400, "validation_error")
    fields = {d["field"] for d in error["details"]}
    assert fields == {"username", "email", "password"}
    assert "3 to 30" in error["message"]


async def test_concurrent_registrations_create_one_user(api: httpx.AsyncClient) -> None:
    statuses: list[int] = []

    async def attempt(i: int) -> None:
        r = await api.post("/api/users/register", json={
            "username": "Popular", "email": f"p{i}@example.com", "password": "password 123"})
        statuses.append(r.status_code)

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(attempt, i)
    assert statuses.count(201) == 1
    assert statuses.count(409) == 199
    r = await api.post("/api/users/login", json={"login": "popular", "password": "password 123"})
    assert r.status_code == 200
