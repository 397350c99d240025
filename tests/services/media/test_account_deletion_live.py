"""Deleting the account of a streamer who is live cuts the RTMP publisher off (issue 11
item 12): the stream ends and its key is erased, and the ingest's key check (every
`media.key_check_s`, 0.25 s here) drops the real ffmpeg publisher."""

from __future__ import annotations

import pytest
import trio

from .test_media_e2e import Live, _publish_cmd, _publish_live, _start, _status, live  # noqa: F401

pytestmark = pytest.mark.slow


async def test_deleting_a_live_streamers_account_cuts_the_publisher_off(
    live: Live,  # noqa: F811
) -> None:
    stream_id, key = await _start(live)
    async with trio.open_nursery() as nursery:
        publisher = await _publish_live(live, nursery, stream_id, key, 60)
        r = await live.api.request("DELETE", "/api/users/me", headers=live.auth,
                                   json={"password": "pass word 1"})
        assert r.status_code == 200 and r.json()["streams_ended"] == [stream_id], r.text
        with trio.fail_after(10):  # key_check_s is 0.25 here: cut off long before 60 s
            await publisher.wait()
        assert publisher.returncode != 0
    assert await _status(live, stream_id) == "ended"
    # The old key publishes nowhere.
    again = await trio.run_process(_publish_cmd(f"{live.rtmp}/{key}", 1), check=False,
                                   capture_stderr=True)
    assert again.returncode != 0
