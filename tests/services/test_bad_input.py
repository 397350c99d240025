"""Bad input of every kind gets a 4xx in the one JSON error shape, never a 500."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from streamscale.backends.storage._tables import users
from streamscale.runtime import Resources
from streamscale.testing import RunningPlatform

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


SURROGATE = '"x\\ud800"'  # valid JSON, not Unicode: UTF-8 cannot encode it


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/users/register",
     '{"username": "sur1", "email": "sur1@example.com", "password": %s}'),
    ("POST", "/api/users/register",
     '{"username": "sur2", "email": "sur2@example.com", "password": "correct horse 1", '
     '"display_name": %s}'),
    ("POST", "/api/users/login", '{"login": "surr", "password": %s}'),
    ("PATCH", "/api/users/me", '{"display_name": %s}'),
    ("PATCH", "/api/users/me", '{"bio": %s}'),
    ("PATCH", "/api/users/me", '{"password": %s, "current_password": "correct horse 1"}'),
    ("POST", "/api/streams/start", '{"title": %s, "category": "c"}'),
    ("POST", "/api/streams/start", '{"title": "t", "category": %s}'),
    ("POST", "/api/streams/start", '{"title": "t", "category": "c", "tags": [%s]}'),
    ("POST", "/api/streams/start", '{"title": "t", %s: "c"}'),
])
async def test_lone_surrogates(api: httpx.AsyncClient, method: str, path: str, body: str) -> None:
    auth = await signed_in(api, "surr")
    r = await api.request(method, path, content=(body % SURROGATE).encode(),
                          headers={**auth, "Content-Type": "application/json"})
    error = assert_error(r, 400, "invalid_unicode")
    assert error["details"][0]["field"]


@pytest.mark.parametrize("body", [
    b"[" * 10_000,  # 20 KB with the closing brackets, under the body limit
    b"[" * 10_000 + b"]" * 10_000,
    b'{"login": ' + b"[" * 40 + b"]" * 40 + b', "password": "x"}',
])
async def test_deep_nesting(api: httpx.AsyncClient, body: bytes) -> None:
    r = await api.post("/api/users/login", content=body,
                       headers={"Content-Type": "application/json"})
    assert_error(r, 400, "nesting_too_deep")


async def test_token_of_a_deleted_user(
    api: httpx.AsyncClient, platform: RunningPlatform
) -> None:
    auth = await signed_in(api, "ghost")
    user_id = (await api.get("/api/users/me", headers=auth)).json()["id"]
    resources = Resources(platform.config)
    store = await resources.store()
    try:  # no delete-account API yet: remove the row through the store's writer
        await store._write(  # type: ignore[attr-defined]
            lambda conn: conn.execute(delete(users).where(users.c.id == user_id)))
        assert await store.get_user(user_id) is None
    finally:
        await resources.aclose()
    for method, path, body in [("GET", "/api/users/me", None),
                               ("POST", "/api/streams/start", {"title": "t", "category": "c"}),
                               ("PATCH", "/api/users/me", {"bio": "b"}),
                               ("PUT", f"/api/users/{user_id}/follow", None)]:
        r = await api.request(method, path, headers=auth, json=body)
        assert_error(r, 401, "invalid_token")
        assert r.headers["WWW-Authenticate"] == "Bearer"


_JSON_CHARS = st.one_of(st.characters(), st.characters(categories=["Cs"]))  # + surrogates
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(_JSON_CHARS, max_size=20),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(_JSON_CHARS, max_size=8), inner, max_size=3),
    max_leaves=12,
)
_FIELDS = ["username", "email", "password", "display_name", "login", "bio", "title",
           "category", "tags", "current_password", "refresh_token"]


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Bodies near the real ones: known fields with any JSON value, or deep nesting."""
    depth = draw(st.integers(1, 10_000))
    fields = draw(st.dictionaries(st.sampled_from(_FIELDS) | st.text(_JSON_CHARS, max_size=8),
                                  _json_values, max_size=4))
    if draw(st.booleans()):
        fields[draw(st.sampled_from(_FIELDS))] = "NESTED"
    text = json.dumps(fields)  # ensure_ascii: surrogates go out as \\udxxx escapes
    return text.replace('"NESTED"', "[" * depth + "]" * depth).encode()


_ROUTES = [("POST", "/api/users/register"), ("POST", "/api/users/login"),
           ("PATCH", "/api/users/me"), ("POST", "/api/streams/start")]


async def test_any_json_body_gets_a_clean_answer(api: httpx.AsyncClient) -> None:
    """Property: whatever JSON arrives (surrogates, deep nesting, wrong types), the answer
    is a success or a 4xx in the one error shape. Hypothesis drives a blocking client in a
    thread while the server runs on this trio loop."""
    auth = await signed_in(api, "prop")

    @settings(max_examples=60, deadline=None, database=None)
    @given(route=st.sampled_from(_ROUTES), body=_bodies())
    def check(client: httpx.Client, route: tuple[str, str], body: bytes) -> None:
        r = client.request(*route, content=body, headers={"Content-Type": "application/json"})
        if r.status_code >= 300:
            assert r.status_code < 500, r.text
            assert_error(r, r.status_code)

    def run() -> None:
        with httpx.Client(base_url=api.base_url, headers=auth, timeout=30) as client:
            check(client)

    await trio.to_thread.run_sync(run)


async def _raw_exchange(platform: RunningPlatform, data: bytes) -> tuple[int, dict[str, str],
                                                                          bytes]:
    """Send bytes no HTTP client would; read one answer (by its Content-Length)."""
    host, port = platform.api_url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(data)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := await stream.receive_some(65536)):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines)}
        while len(body) < int(headers["content-length"]):
            chunk = await stream.receive_some(65536)
            assert chunk, "closed before the whole body"
            body += chunk
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
     431, "headers_too_large"),
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET /api/health HTTP/1.1\r\n\r\n", 400, "bad_request"),  # no Host
    (b"POST /api/users/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\n", 400, "bad_request"),
    (b"POST /api/users/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
     501, "not_implemented"),
    (b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
     b"Upgrade: websocket\r\n\r\n", 400, "bad_request"),  # no key: a bad handshake
])
async def test_framing_errors_in_the_error_shape(
    platform: RunningPlatform, data: bytes, status: int, code: str
) -> None:
    """hypercorn answers these before the app sees a request; still the one shape."""
    got, headers, body = await _raw_exchange(platform, data)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == headers["x-request-id"]


async def test_websocket_upgrade_to_an_api_path(platform: RunningPlatform) -> None:
    """The API has no WebSocket routes: a valid upgrade is refused in the shape (was a
    500 with an empty body: the error handlers read the request outside its context)."""
    status, headers, body = await _raw_exchange(platform, (
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nX-Request-Id: ws-1\r\n\r\n"))
    assert 400 <= status < 500
    error = json.loads(body)["error"]
    assert error["request_id"] == headers["x-request-id"] == "ws-1"
