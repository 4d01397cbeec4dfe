"""nginx's `empty_gif` on a free loopback port: the ceiling of what hey measures on this machine.

Optional: used only when nginx is on PATH (`apt-get install nginx-light`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tracker.devstack.processes import ManagedProcess, free_port

CONFIG = """
daemon off;
worker_processes {workers};
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/pixel {{ empty_gif; }}
    }}
}}
"""


@contextmanager
def nginx_empty_gif(workers: int) -> Iterator[str | None]:
    """The base URL of an nginx serving /v1/pixel, or None when nginx is not installed."""
    binary = shutil.which("nginx")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as root:
        port = free_port()
        config = Path(root) / "nginx.conf"
        config.write_text(CONFIG.format(workers=workers, root=root, port=port))
        process = ManagedProcess("nginx", [binary, "-p", root, "-c", str(config)], port).start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.stop()
