"""The global banned-word list through the API (issue 11 item 6): platform admins only,
validated, audited platform-wide, and applied by chat in every channel. The role itself
comes from the operator (`set_admin`, what `streamscale admin grant` runs)."""

from __future__ import annotations

from pathlib import Path

from streamscale.backends.storage import open_store
from streamscale.services.chat.platform_admin import set_admin
from streamscale.testing import make_config
from streamscale.testing.ws_client import open_chat_client

from .test_moderation_api import code, platform

WORDS = "/api/admin/banned-words"


async def test_global_words_admins_only_validated_audited_and_applied(tmp_path: Path) -> None:
    async with platform(tmp_path) as env:
        # Nobody is an admin yet: 401 without a token, 403 (error shape) with one.
        r = await env.call("GET", WORDS)
        assert r.status_code == 401 and code(r) == "unauthorized", r.text
        for method, path, body in [("GET", WORDS, None), ("POST", WORDS, {"word": "zork"}),
                                   ("DELETE", f"{WORDS}/zork", None)]:
            r = await env.call(method, path, "owner", json=body)
            assert r.status_code == 403 and code(r) == "not_platform_admin", r.text
            assert set(r.json()["error"]) >= {"code", "message", "request_id"}
        r = await env.call("POST", WORDS, json={"word": "zork"})
        assert r.status_code == 401

        async with await open_store(make_config(tmp_path).storage_url) as store:
            _, changed = await set_admin(store, "viewer", True)
            assert changed

        # Validation: a word is one token of 1-65 characters.
        for bad in ({"word": "a b"}, {"word": ""}, {"word": "x" * 66}, {}, {"word": 5}):
            r = await env.call("POST", WORDS, "viewer", json=bad)
            assert r.status_code == 400, (bad, r.text)
        r = await env.call("DELETE", f"{WORDS}/neverbanned", "viewer")
        assert r.status_code == 404 and code(r) == "word_not_found"

        # Before: the owner's room takes the word; after: refused, even in evaded form.
        assert (await env.post("troll", "g0", "grobnitz is fine")).status_code == 201
        for _ in range(2):  # idempotent
            r = await env.call("POST", WORDS, "viewer", json={"word": "GrobNitz"})
            assert r.status_code == 200 and r.json() == {"word": "grobnitz",
                                                         "scope": "global"}, r.text
        r = await env.call("GET", WORDS, "viewer")
        assert r.json()["items"] == [{"word": "grobnitz", "scope": "global"}]
        r = await env.post("troll", "g1", "GR0BN1TZ everyone")
        assert r.status_code == 422 and code(r) == "blocked", r.text
        async with open_chat_client(env.ws) as t:
            await t.join(env.room, env.tokens["troll"])
            frame = await t.post("g2", "grobnitz again")
            assert frame["type"] == "error" and frame["code"] == "blocked", frame
        # The channel owner sees it as global in the channel's list, and cannot remove it.
        r = await env.call("GET", env.channel("banned-words"), "owner")
        assert {"word": "grobnitz", "scope": "global"} in r.json()["items"]
        r = await env.call("DELETE", env.channel("banned-words/grobnitz"), "owner")
        assert r.status_code == 404

        r = await env.call("DELETE", f"{WORDS}/GROBNITZ", "viewer")
        assert r.status_code == 200 and r.json()["word"] == "grobnitz", r.text
        assert (await env.post("troll", "g3", "grobnitz is back")).status_code == 201

        r = await env.call("GET", "/api/admin/audit", "viewer")
        entries = list(reversed(r.json()["items"]))
        assert [e["action"] for e in entries] == [
            "platform_admin_grant", "banned_word_add", "banned_word_remove"]
        assert entries[0]["actor_id"] == "operator"
        assert entries[1]["actor_id"] == env.ids["viewer"]
        assert (await env.call("GET", "/api/admin/audit", "owner")).status_code == 403

        # Revoked: 403 again at once.
        async with await open_store(make_config(tmp_path).storage_url) as store:
            await set_admin(store, "viewer", False)
        assert (await env.call("GET", WORDS, "viewer")).status_code == 403
