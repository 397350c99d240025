"""`streamscale cdn nginx-config`: print the nginx edge configuration for an origin.

    streamscale cdn nginx-config --origin http://127.0.0.1:8082 --port 8090 \\
        --prefix /var/lib/streamscale-nginx [--cache-dir DIR] [--workers N] ...

Then run `nginx -p PREFIX -c PREFIX/nginx.conf` as an unprivileged user that owns PREFIX
(and the cache directory). Exit status 2 on a bad value, with the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import NginxEdgeSettings, render_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cdn = sub.add_parser("cdn", help="CDN edge tools (an nginx edge configuration)")
    actions = cdn.add_subparsers(dest="cdn_command", required=True, metavar="ACTION")
    conf = actions.add_parser("nginx-config", help="print an nginx edge cache configuration")
    conf.add_argument("--origin", required=True, help="origin base URL, http://host:port")
    conf.add_argument("--port", type=int, required=True, help="port nginx listens on")
    conf.add_argument("--host", default="127.0.0.1", help="address nginx listens on")
    conf.add_argument("--prefix", type=Path, required=True,
                      help="directory for the pid file, temp files and error log")
    conf.add_argument("--cache-dir", type=Path, help="cache directory (default PREFIX/cache)")
    conf.add_argument("--name", default="nginx", help="edge name sent to the origin")
    conf.add_argument("--workers", type=int, default=1)
    conf.add_argument("--keys-zone-mb", type=int, default=16,
                      help="shared memory for cache keys (1 MB ~ 8,000 objects)")
    conf.add_argument("--max-cache-mb", type=int, default=1024, help="cache size on disk")
    conf.add_argument("--origin-hold-s", type=float, default=10.0,
                      help="longest the origin holds a blocking request")


def run(args: argparse.Namespace) -> int:
    try:
        settings = NginxEdgeSettings(
            origin_url=args.origin, host=args.host, port=args.port,
            prefix=args.prefix.absolute(),
            cache_dir=args.cache_dir.absolute() if args.cache_dir else None,
            edge_name=args.name, workers=args.workers, keys_zone_mb=args.keys_zone_mb,
            max_cache_mb=args.max_cache_mb, origin_hold_s=args.origin_hold_s,
        )
    except ValueError as exc:
        print(f"streamscale cdn nginx-config: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_config(settings))
    return 0
