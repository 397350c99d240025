"""Bad input of every kind gets a 4xx in the one JSON error shape, never a 500."""

from __future__ import annotations

import httpx
import pytest

from .helpers import assert_error, register, signed_in


async def test_malformed_json(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/users/register", content=b'{"username": ',
                       headers={"Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json")


async def test_wrong_content_type(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/users/login", content=b"login=a&password=b",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "unsupported_media_type")


async def test_missing_body(api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/api/users/login"), 400, "validation_error")


@pytest.mark.parametrize("body", [
    [], "text", 42, None,
    {"login": 5, "password": "x"},
    {"login": "a", "password": "b", "admin": True},
    {"login": "a"},
])
async def test_wrong_shapes(api: httpx.AsyncClient, body: object) -> None:
    assert_error(await api.post("/api/users/login", json=body), 400, "validation_error")


async def test_unknown_field_is_named(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/users/login", json={"login": "a", "password": "b", "role": "x"})
    error = assert_error(r, 400, "validation_error")
    assert {"field": "role", "message": "unknown field"} in error["details"]


async def test_oversized_body(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/users/register", json={"username": "a" * 100_000})
    assert_error(r, 413, "payload_too_large")


async def test_unknown_route_and_method(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/api/nothing-here"), 404, "not_found")
    r = await api.delete("/api/users/register")
    assert_error(r, 405, "method_not_allowed")


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer not.a.jwt", "Basic abc", "Bearer eyJhbGciOiJub25lIn0.e30.",
])
async def test_bad_tokens(api: httpx.AsyncClient, header: str) -> None:
    r = await api.get("/api/users/me", headers={"Authorization": header})
    assert_error(r, 401)
    assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_forged_token_with_known_kid(api: httpx.AsyncClient) -> None:
    import jwt

    auth = await signed_in(api, "victim")
    token = auth["Authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, b"x" * 32, algorithm="HS256", headers={"kid": header["kid"]})
    r = await api.get("/api/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert_error(r, 401, "invalid_token")


async def test_request_id_is_echoed_or_made(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/users/nope", headers={"X-Request-Id": "abc-123"})
    assert assert_error(r, 404)["request_id"] == "abc-123"
    r = await api.get("/api/users/nope", headers={"X-Request-Id": "bad id with spaces"})
    rid = assert_error(r, 404)["request_id"]
    assert rid != "bad id with spaces" and len(rid) == 16


async def test_failed_write_changes_nothing(api: httpx.AsyncClient) -> None:
    await register(api, "keeper")
    auth = await signed_in(api, "other1")
    r = await api.patch("/api/users/me", headers=auth,
                        json={"display_name": "New", "email": "keeper@example.com",
                              "current_password": "correct horse 1"})
    assert_error(r, 409, "email_taken")
    me = (await api.get("/api/users/me", headers=auth)).json()
    assert me["display_name"] == "other1" and me["email"] == "other1@example.com"
