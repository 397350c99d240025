"""The API gateway: one HTTP front (hypercorn + quart-trio) for every service's routes."""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from ...config import Config
from ...runtime import ServiceInfo, current_resources, shutdown_requested
from ..auth import KeyRing
from ..cdn.health import CdnHealth
from ..chat.pipeline import ChatPoster
from . import _framing
from ._app import create_app
from ._metrics import api_metrics

log = logging.getLogger(__name__)

__all__ = ["create_app", "run"]


async def run(
    config: Config, *, task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    store = await current_resources().store()
    keys = KeyRing(store, config.auth)
    await keys.load()
    poster = ChatPoster(await current_resources().bus())
    # playback_url names the first CDN up: the gateway probes the edges itself (the same
    # rule as the origin's steering, no dependency on the origin process; cdn/health.py)
    cdn_health = CdnHealth(config.cdn, observer="gateway") if config.cdn.edges else None
    app = create_app(config, store, keys, chat=poster, cdn_health=cdn_health)
    # One post budget per process: the chat service's WebSocket posts count against it too.
    app.extensions["streamscale"].services["chat_limits"] = current_resources().post_limits()

    _framing.install()  # hypercorn's own 400/431/501 answers in the JSON error shape
    hyper = HyperConfig()
    hyper.bind = [f"{config.gateway.host}:{config.gateway.port}"]
    hyper.accesslog = None
    hyper.graceful_timeout = config.gateway.shutdown_grace_s
    hyper.h11_max_incomplete_size = 16 * 1024

    async with api_metrics(app), trio.open_nursery() as nursery:

        async def serve_api(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await serve(app, hyper, shutdown_trigger=shutdown_requested().wait,
                        task_status=task_status)
            nursery.cancel_scope.cancel()  # drained after shutdown: stop key maintenance

        nursery.start_soon(keys.maintain)
        if cdn_health is not None:
            nursery.start_soon(partial(cdn_health.run, shutdown=shutdown_requested()))
        await nursery.start(poster.run)
        binds: list[str] = await nursery.start(serve_api)
        base = config.gateway.public_url or (
            binds[0] if config.gateway.port == 0 else config.gateway_url
        )
        task_status.started(ServiceInfo(
            name="gateway",
            urls={"api": f"{base}/api", "openapi": f"{base}/api/openapi.json",
                  "docs": f"{base}/api/docs"},
        ))
