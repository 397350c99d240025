"""The media server: RTMP ingest, the PyAV transcode ladder, HLS/LL-HLS packaging, recording.

Publishers reach `rtmp://host:port/live/<stream key>`; the packaged stream appears in the
process's media registry, which the origin serves.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from ...config import Config
from ...protocols.hls import PackagerConfig
from ...runtime import ServiceInfo, current_resources, shutdown_requested
from ..streaming import StreamService
from ._metrics import media_metrics
from .health_report import HealthReporter, bus_sender
from .hub import MediaHub
from .ingest import RtmpIngest
from .pipeline import RUNGS
from .recording import expire_periodically
from .transcode_overload import OverloadPolicy

log = logging.getLogger(__name__)

__all__ = ["MediaHub", "RtmpIngest", "run"]


async def run(
    config: Config, *, task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    resources = current_resources()
    store = await resources.store()
    streams = StreamService(store, config)
    media = config.media
    async with trio.open_nursery() as pipelines:
        hub = MediaHub(
            nursery=pipelines, streams=streams, registry=resources.media_registry(),
            rungs=[RUNGS[name] for name in media.rungs],
            packager=PackagerConfig(segment_target_s=media.segment_s,
                                    part_target_s=media.part_s,
                                    window_segments=media.window_segments,
                                    skip_until_s=media.skip_until_s or None),
            recordings_root=config.recordings_root, capacity=media.transcode_capacity,
            reconnect_grace_s=media.reconnect_grace_s,
            independent_s=media.independent_s,
            overload=OverloadPolicy(
                warmup_s=media.shed_warmup_s, shed_behind_s=media.shed_behind_s,
                shed_sustain_s=media.shed_sustain_s, restore_load=media.restore_load,
                restore_after_s=media.restore_after_s, cooldown_s=media.shed_cooldown_s),
        )
        ingest = RtmpIngest(
            store, streams, hub, key_check_s=media.key_check_s,
            max_connections=media.rtmp_max_connections,
            max_connections_per_ip=media.rtmp_max_connections_per_ip,
            max_buffered_bytes=media.rtmp_max_buffered_bytes,
            max_buffered_bytes_unpublished=media.rtmp_max_buffered_bytes_unpublished)
        async with media_metrics(hub, ingest), trio.open_nursery() as front:
            listeners: list[trio.SocketListener] = await front.start(
                partial(ingest.serve, media.host, media.rtmp_port))
            front.start_soon(partial(expire_periodically, config.recordings_root,
                                     media.recording_retention_days))
            health = HealthReporter(hub.health, bus_sender(await resources.bus()),
                                    sample_s=config.analytics.health_sample_s,
                                    flush_s=config.analytics.health_flush_s)
            front.start_soon(partial(health.run, shutdown=shutdown_requested()))
            port = listeners[0].socket.getsockname()[1]
            url = f"rtmp://{media.host}:{port}/live"
            log.info("media: RTMP ingest at %s", url)
            task_status.started(
                ServiceInfo(name="media", urls={"rtmp": url},
                            handles={"hub": hub, "health": health}))
            await shutdown_requested().wait()
            front.cancel_scope.cancel()  # stop accepting; publishers are disconnected
        await hub.close()  # end every stream now: ENDLIST, recordings, status "ended"
        pipelines.cancel_scope.cancel()
