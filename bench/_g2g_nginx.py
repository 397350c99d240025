"""The peer for bench/glass_to_glass.py: nginx with the RTMP module, classic HLS with 1 s
fragments (cut on keyframes, so as long as the publisher's GOP), configured into a temp
dir and run in the foreground on 127.0.0.1 only, with CORS for the player page."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

MODULE_PATHS = ("/usr/lib/nginx/modules/ngx_rtmp_module.so",
                "/usr/local/nginx/modules/ngx_rtmp_module.so")
PACKAGES = ("nginx-light", "libnginx-mod-rtmp")  # Debian's; `nginx` works as well

CONF = """\
load_module {module};
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls on;
            hls_path {tmp}/hls;
            hls_fragment {fragment_s}s;
            hls_playlist_length 6s;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            alias {tmp}/hls/;
            add_header Cache-Control no-cache;
            add_header Access-Control-Allow-Origin *;  # the player page is on another port
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_nginx(*, install: bool) -> tuple[str, str] | str:
    """(nginx binary, rtmp module path), or why the peer is skipped. Installs Debian's
    packages only when allowed, running as root, and apt-get exists."""
    def found() -> tuple[str, str] | None:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                           else None)
        module = next((m for m in MODULE_PATHS if Path(m).exists()), None)
        return (binary, module) if binary and module else None

    have = found()
    if have is not None:
        return have
    apt = shutil.which("apt-get")
    if not install:
        return "nginx with the rtmp module is not installed (and --no-install was given)"
    if os.geteuid() != 0 or apt is None:
        return "nginx with the rtmp module is not installed (installing needs root and apt-get)"
    print(f"installing {' '.join(PACKAGES)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run([apt, "install", "-y", "-q", *PACKAGES], env=env,
                            capture_output=True, text=True, check=False)
    have = found()
    if have is None:
        return f"apt-get install {' '.join(PACKAGES)} failed: {result.stderr.strip()[-300:]}"
    return have


def write_config(tmp: Path, module: str, *, fragment_s: float) -> tuple[Path, int, int]:
    """nginx.conf in `tmp` (hls files in tmp/hls); returns (conf, rtmp port, http port)."""
    rtmp_port, http_port = free_port(), free_port()
    (tmp / "hls").mkdir(parents=True, exist_ok=True)
    # The worker runs as nobody when nginx starts as root: it writes hls/ and reads tmp/.
    tmp.chmod(0o755)
    (tmp / "hls").chmod(0o777)
    conf = tmp / "nginx.conf"
    conf.write_text(CONF.format(module=module, tmp=tmp, rtmp_port=rtmp_port,
                                http_port=http_port, fragment_s=f"{fragment_s:g}"))
    return conf, rtmp_port, http_port


def command(binary: str, tmp: Path, conf: Path) -> list[str]:
    return [binary, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"]
