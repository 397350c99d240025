"""The served OpenAPI spec is true to the routes: schemathesis finds no 5xx and no
response that breaks the spec, with and without a signed-in user."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest
import trio

from streamscale.services import validation as v
from streamscale.services.api import ID_PATTERN
from streamscale.testing import RunningPlatform, make_config, running_platform

from .helpers import assert_error, signed_in

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")  # surrogates, deep nesting
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    # The spec is the truth: what it allows is accepted, what it forbids is refused
    # (schemathesis generates both: --mode all), and Allow headers list real methods.
    "positive_data_acceptance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
])
# Valid requests the schema cannot tell apart from refused ones: a taken username (409),
# owner-only routes (403), gone ids (404), rate limits (429); on paginated lists, a cursor
# the server never issued (400 invalid_cursor: cursors are opaque).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "429"]

[[operations]]
include-method = "GET"
include-path-regex = "/(followers|following|streams|chat|audit|review|appeals|bans|timeouts\
|banned-words)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]

# Following yourself: 400 follow_self, a rule about the caller that no schema can state;
# and follows are writes, so the per-user write limit may answer 429 as anywhere else.
[[operations]]
include-path-regex = "/follow$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "429"]

# Chat settings: JSON Schema counts 1309.0 as an integer; the strict models refuse a
# float for an int field (400). Null is no longer the reason: the schema now keeps null
# out of the fields that refuse it.
[[operations]]
include-path-regex = "/chat-settings$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "429"]

# Discovery: a cursor the server never issued is a 400, and so is a query of over 8
# words or a query string whose escapes are not UTF-8 (rules no schema states).
[[operations]]
include-path-regex = "/(streams/search|streams/live|categories)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

# The notification stream (text/event-stream) never ends: tests/services/social reads it.
[[operations]]
include-path = "/api/me/notifications"
enabled = false

# Watch history: a cursor the server never issued is a 400, as on the lists above.
[[operations]]
include-path = "/api/me/history"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]

"""


async def test_spec_lists_every_route(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    paths = spec["paths"]
    for path, method in [
        ("/api/users/register", "post"), ("/api/users/login", "post"),
        ("/api/users/{user_id}", "get"), ("/api/users/me", "patch"),
        ("/api/streams/start", "post"), ("/api/streams/{stream_id}/stop", "post"),
        ("/api/streams/{stream_id}", "get"), ("/api/streams/{stream_id}/key", "post"),
        ("/api/users/{user_id}/follow", "put"), ("/api/users/{user_id}/followers", "get"),
        ("/api/streams/{stream_id}/chat", "post"), ("/api/streams/{stream_id}/chat", "get"),
        ("/api/channels/{channel_id}/bans", "post"),
        ("/api/channels/{channel_id}/appeals/{appeal_id}/decision", "post"),
        ("/api/channels/{channel_id}/review", "get"), ("/api/channels/{channel_id}/audit", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_spec_states_the_rules(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    bodies = {}
    for path, method in [("/api/users/register", "post"), ("/api/users/login", "post"),
                         ("/api/users/me", "patch"), ("/api/streams/start", "post")]:
        body = spec["paths"][path][method]["requestBody"]
        assert body["required"] is True, path
        bodies[path] = body["content"]["application/json"]["schema"]["properties"]
    register = bodies["/api/users/register"]
    assert register["username"]["pattern"] == v.USERNAME_PATTERN
    assert (register["username"]["minLength"], register["username"]["maxLength"]) == (3, 30)
    assert register["password"]["maxLength"] == v.PASSWORD_MAX
    assert register["email"]["pattern"] == v.EMAIL_PATTERN
    start = bodies["/api/streams/start"]
    assert start["title"]["maxLength"] == 140 and start["title"]["pattern"]
    assert start["tags"]["items"]["pattern"] == v.TAG_PATTERN
    user = spec["paths"]["/api/users/{user_id}"]["get"]["parameters"][0]
    assert user["schema"]["pattern"] == f"^{ID_PATTERN}$"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/streams/start"), ("PATCH", "/api/users/me"),
    ("POST", "/api/streams/0123456789abcdef0123456789abcdef/stop"),
])
@pytest.mark.parametrize("body", [None, b"{", b'{"title": 5}', b"[" * 1000])
async def test_no_token_is_401_whatever_the_body(
    api: httpx.AsyncClient, method: str, path: str, body: bytes | None
) -> None:
    """The spec lists 401 for a missing token: it comes before any look at the body."""
    r = await api.request(method, path, content=body,
                          headers={"Content-Type": "application/json"})
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("path", ["/api/users/register", "/api/users/login",
                                  "/api/users/refresh", "/api/users/logout",
                                  "/api/streams/start"])
async def test_post_only_routes_allow_only_post(api: httpx.AsyncClient, path: str) -> None:
    r = await api.options(path)
    assert set(r.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    r = await api.get(path)
    assert_error(r, 405, "method_not_allowed")
    assert set(r.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


async def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    async with running_platform(make_config(tmp_path), ("gateway", "chat")) as platform:
        base = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            await _fuzz(api, platform, tmp_path)


async def _fuzz(api: httpx.AsyncClient, platform: RunningPlatform, tmp_path: Path) -> None:
    auth = await signed_in(api, "fuzzer")
    # A stream of the fuzzer's own, so owner-only routes are reachable by example.
    await api.post("/api/streams/start", headers=auth, json={"title": "t", "category": "c"})
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    spec_url = platform.api_url + "/openapi.json"
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    for headers in ([], ["-H", f"Authorization:{auth['Authorization']}"]):
        result = await trio.run_process(
            [st, "--config-file", str(tmp_path / "schemathesis.toml"), "run", spec_url,
             "--checks", CHECKS, "--max-examples", "25",
             "--phases", "examples,coverage,fuzzing", "--workers", "1",
             "--request-timeout", "20", "--seed", "1", "--no-color", *headers],
            capture_stdout=True, capture_stderr=True, check=False, cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        )
        output = result.stdout.decode() + result.stderr.decode()
        assert result.returncode == 0, output[max(0, output.find("FAILURES") - 80):][:12000]
