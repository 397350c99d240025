"""The `streamscale` command: up | admin | cdn | estimate | sim | calibrate | load | chaos |
report."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from . import __version__, admin_cli
from .backends.extras import MissingExtra, check_urls
from .backends.storage import SecretsKeyError
from .config import Config, ConfigError, load
from .runtime import NotYetAvailable, Service, ServiceInfo, resolve, run_services
from .services.cdn.nginx import cli as nginx_cli

log = logging.getLogger("streamscale")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamscale",
        description="A live streaming platform, its capacity model and its drills.",
    )
    parser.add_argument("--version", action="version", version=f"streamscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the platform's services in one process")
    up.add_argument("--config", type=Path, help="TOML config file (default: none)")
    up.add_argument(
        "--services", help="comma-separated subset, e.g. gateway,media (default: all built)"
    )
    up.add_argument("--list", action="store_true", help="list the services and exit")
    admin_cli.add_parser(sub)
    nginx_cli.add_parser(sub)

    for name, help_text in [
        ("estimate", "the seed's back-of-envelope figures for a scenario"),
        ("sim", "run the SimPy capacity model on a scenario"),
        ("load", "run a Locust load test against the real platform"),
        ("chaos", "run a chaos drill against the real platform"),
        ("report", "overlay model and real-run results"),
        ("calibrate", "measure the model's cost parameters on this machine"),
    ]:
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["calibrate"]:  # REMAINDER would not pass on leading options (--quick)
        return _calibrate(argv[1:])
    if argv[:1] and argv[0] in _DELEGATED:  # the same for these (--help, options first)
        return _delegate(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "admin":
            return admin_cli.run(args)
        if args.command == "cdn":
            return nginx_cli.run(args)
        return _delegate(args.command, list(args.args))
    except ConfigError as exc:
        print(f"streamscale: config error: {exc}", file=sys.stderr)
        return 2


_DELEGATED = frozenset({"load", "chaos", "estimate", "sim", "report"})


def _delegate(command: str, argv: list[str]) -> int:
    if command == "load":
        from loadtest.run import main as load_main

        return load_main(argv)
    if command == "chaos":
        from chaos.cli import main as chaos_main

        return chaos_main(argv)
    try:
        from sim import cli as sim_cli
    except ImportError:
        print(f"streamscale {command}: the capacity model is not built yet", file=sys.stderr)
        return 2
    entry = {"estimate": sim_cli.estimate_main, "report": sim_cli.report_main}.get(
        command, sim_cli.sim_main)
    result: int = entry(argv)
    return result


def _calibrate(argv: list[str]) -> int:
    """Runs bench/_calibrate.py: the platform's own benches, so a source checkout only."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "_calibrate.py"
    spec = importlib.util.spec_from_file_location("streamscale_calibrate", path)
    if spec is None or spec.loader is None or not path.is_file():
        print(f"streamscale calibrate: needs a source checkout ({path} not found)",
              file=sys.stderr)
        return 2
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: int = module.main(argv)
    return result


def _up(args: argparse.Namespace) -> int:
    if args.list:
        from .runtime import SERVICES

        for service in SERVICES.values():
            state = "" if service.module else f"  (not built yet: {service.issue})"
            print(f"{service.name:10} {service.summary}{state}")
        return 0
    config = load(args.config)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        services = resolve(args.services)
        for service in services:
            service.load()
        check_urls(storage_url=config.storage_url, bus_url=config.chat.bus_url)
    except (ValueError, NotYetAvailable, MissingExtra) as exc:
        print(f"streamscale up: {exc}", file=sys.stderr)
        return 2
    os.umask(0o077)  # every file and folder the platform creates is its owner's alone
    try:
        trio.run(_serve, config, services)
    except (SecretsKeyError, BaseExceptionGroup) as exc:
        wrong_key = exc.subgroup(SecretsKeyError) if isinstance(exc, BaseExceptionGroup) else exc
        if wrong_key is None:
            raise
        print(f"streamscale up: {_first_leaf(wrong_key)}", file=sys.stderr)
        return 2
    return 0


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _Ready(trio.TaskStatus[list[ServiceInfo]]):
    """task_status for run_services: print one line once every service is up."""

    def started(self, value: list[ServiceInfo] | None = None) -> None:
        print("streamscale: ready (Ctrl-C to stop)", flush=True)


def _print_started(info: ServiceInfo) -> None:
    for label, url in info.urls.items():
        print(f"  {info.name:8} {label:10} {url}", flush=True)


async def _serve(config: Config, services: list[Service]) -> None:
    shutdown = trio.Event()
    grace_s = config.gateway.shutdown_grace_s
    async with trio.open_nursery() as nursery:

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if shutdown.is_set():
                        log.warning("second signal: stopping now")
                        nursery.cancel_scope.cancel()
                        return
                    log.info("%s: graceful shutdown", signal.Signals(signum).name)
                    shutdown.set()

        nursery.start_soon(watch_signals)
        print(f"streamscale {__version__}: starting (data in {config.data_dir})", flush=True)
        await run_services(
            config, services, shutdown=shutdown, grace_s=grace_s,
            on_started=_print_started, task_status=_Ready(),
        )
        print("streamscale: stopped", flush=True)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
