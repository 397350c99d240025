"""Access tokens: expiry, key rotation without logging anyone out, rate limits."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from streamscale.config import AuthConfig, GatewayConfig
from streamscale.runtime import Resources
from streamscale.services.auth import KeyRing
from streamscale.services.clock import utcnow
from streamscale.testing import RunningPlatform, make_config, running_platform

from .helpers import assert_error, login, register, signed_in


async def _keyring(platform: RunningPlatform) -> tuple[KeyRing, Resources]:
    resources = Resources(platform.config)
    ring = KeyRing(await resources.store(), platform.config.auth)
    await ring.load()
    return ring, resources


async def test_rotation_keeps_old_tokens_valid(
    api: httpx.AsyncClient, platform: RunningPlatform
) -> None:
    old_auth = await signed_in(api, "rotor")
    old_kid = jwt.get_unverified_header(old_auth["Authorization"][7:])["kid"]
    ring, resources = await _keyring(platform)
    try:
        new_key = await ring.rotate()  # as another gateway process would
    finally:
        await resources.aclose()
    assert new_key.kid != old_kid
    assert (await api.get("/api/users/me", headers=old_auth)).status_code == 200
    # A token from the peer's new key is accepted: the unknown kid reloads the ring...
    peer_token, _ = ring.sign(user_id=(await api.get("/api/users/me", headers=old_auth)).json()[
        "id"], username="rotor")
    peer_auth = {"Authorization": f"Bearer {peer_token}"}
    assert (await api.get("/api/users/me", headers=peer_auth)).status_code == 200
    # ...after which this gateway signs with the new key too, and old tokens still work.
    tokens = await login(api, "rotor")
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == new_key.kid
    assert (await api.get("/api/users/me", headers=old_auth)).status_code == 200


async def test_retired_key_no_longer_verifies(
    api: httpx.AsyncClient, platform: RunningPlatform
) -> None:
    auth = await signed_in(api, "retiree")
    kid = jwt.get_unverified_header(auth["Authorization"][7:])["kid"]
    resources = Resources(platform.config)
    store = await resources.store()
    try:
        keys = await store.list_signing_keys(now=utcnow())
        assert [k.kid for k in keys] == [kid]
        # Rotate with retirement "now": the old key is gone at once.
        ring = KeyRing(store, dataclasses.replace(
            platform.config.auth, key_retire_s=platform.config.auth.access_ttl_s))
        await ring.rotate()
        later = await store.list_signing_keys(
            now=utcnow().replace(year=utcnow().year + 1))
        assert kid not in [k.kid for k in later]
    finally:
        await resources.aclose()


async def test_expired_token(api: httpx.AsyncClient, platform: RunningPlatform) -> None:
    await register(api, "late")
    tokens = await login(api, "late")
    resources = Resources(platform.config)
    store = await resources.store()
    try:
        key = (await store.list_signing_keys(now=utcnow()))[0]
    finally:
        await resources.aclose()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 5
    expired = jwt.encode(claims, key.secret, algorithm="HS256", headers={"kid": key.kid})
    r = await api.get("/api/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert_error(r, 401, "token_expired")


def test_retire_shorter_than_token_lifetime_is_refused() -> None:
    from streamscale.config import ConfigError

    with pytest.raises(ConfigError, match="key_retire_s"):
        AuthConfig(access_ttl_s=900, key_retire_s=60)


@pytest.fixture
async def strict_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, gateway=dataclasses.replace(
        config.gateway, login_rate_per_minute=3, write_rate_per_minute=2))
    async with running_platform(config) as running:
        base = running.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base) as client:
            yield client


async def test_login_rate_limit_per_ip(strict_api: httpx.AsyncClient) -> None:
    await register(strict_api, "limited")
    for _ in range(3):
        await strict_api.post("/api/users/login", json={"login": "limited", "password": "x"})
    r = await strict_api.post("/api/users/login",
                              json={"login": "limited", "password": "correct horse 1"})
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1


async def test_write_rate_limit_per_user(strict_api: httpx.AsyncClient) -> None:
    await register(strict_api, "writer")
    tokens = await login(strict_api, "writer")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    body = {"title": "t", "category": "c"}
    for _ in range(2):
        r = await strict_api.post("/api/streams/start", headers=auth, json=body)
        assert r.status_code == 201
    assert_error(await strict_api.post("/api/streams/start", headers=auth, json=body),
                 429, "rate_limited")
    # Reads are not writes: still allowed.
    assert (await strict_api.get("/api/users/me", headers=auth)).status_code == 200


def test_gateway_config_rejects_bad_port() -> None:
    from streamscale.config import ConfigError

    with pytest.raises(ConfigError, match="port"):
        GatewayConfig(port=70000)
