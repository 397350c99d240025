"""The same drills under Chaos Toolkit's own `chaos run`.

Chaos Toolkit calls providers synchronously from its own thread, while a drill's platform,
proxies, publishers and players are trio tasks that must outlive each call. This module is
a Chaos Toolkit control (`"controls": [{"name": "streamscale", "provider": {"type":
"python", "module": "chaos.ctk"}}]`): before the experiment it starts a trio loop in a
thread, opens the drill there (the platform in-process; targeting a running platform is
`streamscale chaos --target` only) and runs the experiment's setup activities; the actions in
`chaos.actions` (decorated with `provider`) then run on that loop; after the experiment
the loop is stopped. `chaos.runner` ignores the control: it runs the drill itself.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import trio

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class _Host:
    """A trio loop in a thread, holding one drill open between Chaos Toolkit's calls."""

    def __init__(self) -> None:
        self.token: trio.lowlevel.TrioToken | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._stop: trio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self, experiment: dict[str, Any], config: dict[str, Any]) -> None:
        self._thread = threading.Thread(target=trio.run, args=(self._main, experiment, config),
                                        name="streamscale-drill", daemon=True)
        self._thread.start()
        if not self.ready.wait(180):
            raise RuntimeError("the drill did not start within 180 s")
        if self.error is not None:
            raise RuntimeError(f"the drill's setup failed: {self.error}") from self.error

    async def _main(self, experiment: dict[str, Any], config: dict[str, Any]) -> None:
        from .drill import open_drill
        from .runner import _setup, database, media_settings, run_activity, starts_platform

        self.token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        try:
            async with open_drill(start_platform=starts_platform(experiment),
                                  database=database(experiment),
                                  media=media_settings(experiment, config)):
                for activity in _setup(experiment):
                    record = await run_activity(activity, config)
                    if record["status"] != "succeeded":
                        raise RuntimeError(f"setup {activity.get('name')}: "
                                           f"{record.get('exception')}")
                self.ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.ready.set()

    def stop(self) -> None:
        if self.token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self.token)
        if self._thread is not None:
            self._thread.join(60)
        self.token = None


_HOST: _Host | None = None


def provider(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Awaitable[T]]:
    """An async action or probe callable both ways: on a trio loop (chaos.runner) it returns
    the coroutine to await; from Chaos Toolkit's thread it runs on the drill's loop and
    returns the result."""

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:  # not on a trio loop: Chaos Toolkit's thread
            if _HOST is None or _HOST.token is None:
                raise RuntimeError("no drill is running: add the chaos.ctk control") from None
            return trio.from_thread.run(functools.partial(func, *args, **kwargs),
                                        trio_token=_HOST.token)
        return func(*args, **kwargs)

    return call


# -- the Chaos Toolkit control ------------------------------------------------------------

def before_experiment_control(context: dict[str, Any], configuration: dict[str, Any] | None
                              = None, **kwargs: Any) -> None:
    global _HOST
    log.info("streamscale: starting the drill's platform")
    _HOST = _Host()
    _HOST.start(context, dict(configuration or {}))


def after_experiment_control(context: dict[str, Any], state: Any = None,
                             **kwargs: Any) -> None:
    cleanup_control()


def cleanup_control() -> None:
    global _HOST
    if _HOST is not None:
        _HOST.stop()
        _HOST = None
