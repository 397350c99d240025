"""Run a set of services in one nursery and shut them down gracefully.

Shutdown has two steps, like hypercorn's worker: first the shutdown event is set, so
servers stop accepting and finish in-flight requests; if they have not all returned
within the grace period, the nursery is cancelled.
"""

from __future__ import annotations

import contextvars
import gc
import logging
from collections.abc import Callable, Sequence

import trio

from ..config import Config
from ._resources import open_resources
from ._services import Service, ServiceInfo

log = logging.getLogger(__name__)

_shutdown: contextvars.ContextVar[trio.Event] = contextvars.ContextVar("streamscale_shutdown")


def shutdown_requested() -> trio.Event:
    """The event a service waits on to stop accepting work (set on SIGINT/SIGTERM)."""
    try:
        return _shutdown.get()
    except LookupError:  # run outside the supervisor (tests): an event nobody sets
        event = trio.Event()
        _shutdown.set(event)
        return event


async def run_services(
    config: Config,
    services: Sequence[Service],
    *,
    shutdown: trio.Event,
    grace_s: float,
    on_started: Callable[[ServiceInfo], None] = lambda info: None,
    task_status: trio.TaskStatus[list[ServiceInfo]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start `services` in order, report them, and run until `shutdown` + grace."""
    runs = [(s, s.load()) for s in services]  # fail before starting anything
    _shutdown.set(shutdown)
    async with open_resources(config) as resources, trio.open_nursery() as nursery:
        infos: list[ServiceInfo] = []
        for service, run in runs:
            info: ServiceInfo = await nursery.start(run, config)
            resources.started_urls[info.name] = dict(info.urls)
            log.info("service %s started: %s", service.name, info.urls)
            on_started(info)
            infos.append(info)
        task_status.started(infos)
        # Everything made at start-up (app, models, metadata) lives as long as the process:
        # keep it out of the cyclic GC's scans, which otherwise show up as tail latency
        # (bench/api.py: p99 63 ms -> 17 ms on the stream read path).
        gc.freeze()

        await shutdown.wait()
        log.info("shutting down (grace %.1f s)", grace_s)
        nursery.cancel_scope.deadline = trio.current_time() + grace_s
