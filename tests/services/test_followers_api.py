"""Followers: follow, unfollow, list both ways."""

from __future__ import annotations

import httpx

from .helpers import assert_error, signed_in


async def _me(api: httpx.AsyncClient, auth: dict[str, str]) -> str:
    user_id: str = (await api.get("/api/users/me", headers=auth)).json()["id"]
    return user_id


async def test_follow_unfollow_and_lists(api: httpx.AsyncClient) -> None:
    star = await signed_in(api, "star")
    fans = [await signed_in(api, f"fan{i}") for i in range(3)]
    star_id = await _me(api, star)

    for fan in fans:
        r = await api.put(f"/api/users/{star_id}/follow", headers=fan)
        assert r.status_code == 200, r.text
    again = await api.put(f"/api/users/{star_id}/follow", headers=fans[0])
    assert again.json() == {"user_id": star_id, "following": True, "followers": 3}

    page = (await api.get(f"/api/users/{star_id}/followers", params={"limit": 2})).json()
    rest = (await api.get(f"/api/users/{star_id}/followers",
                          params={"cursor": page["next_cursor"]})).json()
    fan_ids = {await _me(api, fan) for fan in fans}
    assert {f["follower_id"] for f in page["items"] + rest["items"]} == fan_ids
    assert rest["next_cursor"] is None

    fan0 = await _me(api, fans[0])
    following = (await api.get(f"/api/users/{fan0}/following")).json()
    assert [f["user_id"] for f in following["items"]] == [star_id]

    r = await api.delete(f"/api/users/{star_id}/follow", headers=fans[0])
    assert r.json() == {"user_id": star_id, "following": False, "followers": 2}
    profile = (await api.get(f"/api/users/{star_id}")).json()
    assert profile["followers"] == 2 and profile["following"] == 0


async def test_follow_errors(api: httpx.AsyncClient) -> None:
    auth = await signed_in(api, "solo")
    me = await _me(api, auth)
    assert_error(await api.put(f"/api/users/{me}/follow", headers=auth), 400, "follow_self")
    assert_error(await api.put("/api/users/nobody/follow", headers=auth), 404, "user_not_found")
    assert_error(await api.put(f"/api/users/{me}/follow"), 401)
    assert_error(await api.get("/api/users/nobody/followers"), 404, "user_not_found")
