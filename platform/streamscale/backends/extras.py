"""Optional backends: imported only when configured, with an error that names the extra.

A plain `pip install streamscale` (what `./dev up` does) runs the embedded default,
SQLite and the in-process bus; Redis and PostgreSQL come with the `redis` and `postgres`
extras. Asking for one that is not installed stops start-up with `MissingExtra`, which
says what to install, instead of a ModuleNotFoundError from deep inside a service.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(RuntimeError):
    """A configured backend needs an optional dependency that is not installed."""

    def __init__(self, what: str, module: str, extra: str) -> None:
        self.module, self.extra = module, extra
        super().__init__(
            f"{what} needs the Python package {module!r}, which is not installed: "
            f"pip install 'streamscale[{extra}]' (or ./dev test, which installs every extra)"
        )


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise MissingExtra naming `extra` and what needed it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the package is there but something it imports is broken: show that
        raise MissingExtra(what, module, extra) from None


def check_urls(*, storage_url: str, bus_url: str) -> None:
    """Fail fast, before any service starts, if a configured backend cannot be loaded."""
    if storage_url.startswith("postgresql"):
        require("psycopg", extra="postgres", what=f"storage.url {_redact(storage_url)!r}")
    if bus_url.startswith(("redis:", "rediss:")):
        require("redis", extra="redis", what=f"chat.bus_url {_redact(bus_url)!r}")


def _redact(url: str) -> str:
    """Hide a password in a URL shown in an error."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
