"""The media registry: versions, and waking only the waiters a change concerns."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from streamscale.services.origin import MediaRegistry

from .streams import LiveFeeder


async def test_waiters_wake_only_for_their_rendition() -> None:
    registry = MediaRegistry()
    feed = LiveFeeder(registry)
    woke: list[str] = []

    async def wait(rendition: str | None) -> None:
        await registry.wait_for_change("s1", registry.version("s1"), rendition)
        woke.append(rendition or "any")

    async with trio.open_nursery() as nursery:
        for rendition in ("hi", "lo", None):
            nursery.start_soon(wait, rendition)
        await trio.testing.wait_all_tasks_blocked()
        assert registry.waiting("s1") == 3
        feed.renditions[0].push_video(feed.video.samples[0])  # the first keyframe: hi only
        registry.changed("s1")
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(woke) == ["any", "hi"]
        registry.end("s1")  # ending wakes everyone
    assert sorted(woke) == ["any", "hi", "lo"]
    assert registry.is_ended("s1") and all(r.ended for r in feed.renditions)


async def test_versions_publish_and_remove() -> None:
    registry = MediaRegistry()
    assert registry.lookup("s1") is None and registry.version("s1") == -1
    assert await registry.wait_for_change("s1", 0) == -1  # unknown: no waiting
    feed = LiveFeeder(registry)
    assert registry.lookup("s1") is feed.presentation and "s1" in registry
    version = registry.version("s1")
    assert await registry.wait_for_change("s1", version - 1) == version  # already changed
    registry.changed("s1")
    assert registry.version("s1") == version + 1
    replacement = LiveFeeder(MediaRegistry())
    registry.publish("s1", replacement.presentation)  # a reconnect replaces the stream
    assert registry.lookup("s1") is replacement.presentation
    assert registry.version("s1") > version + 1
    registry.remove("s1")
    assert registry.lookup("s1") is None and len(registry) == 0
    with pytest.raises(ValueError, match="stream id"):
        registry.publish("../etc", replacement.presentation)
