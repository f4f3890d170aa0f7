"""A local stand-in for the app's CloudFront distribution: nginx on loopback, `/api/*` to the backend on port
3001, everything else from the frontend bucket on the moto server, `/` as index.html (the default root object)
and, like CloudFront's custom error response, index.html with 200 for a path the bucket does not have."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.hostside import free_port, stop_process, wait_for_port


def nginx_config(work: Path, port: int, endpoint: str, bucket: str, backend: str, spa_fallback: bool) -> str:
    origin = f"{endpoint.rstrip('/')}/{bucket}"
    fallback = "      proxy_intercept_errors on;\n      error_page 403 404 = /index.html;\n" if spa_fallback else ""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"  {kind}_temp_path {work}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{}}
http {{
  access_log {work}/access.log;
{temp}  server {{
    listen 127.0.0.1:{port};
    location /api/ {{
      proxy_pass {backend};
    }}
    location = / {{
      proxy_pass {origin}/index.html;
    }}
    location = /index.html {{
      proxy_pass {origin}/index.html;
    }}
    location / {{
      proxy_pass {origin}/;
{fallback}    }}
  }}
}}
"""


@contextmanager
def local_cdn(
    endpoint: str, bucket: str, backend: str = "http://127.0.0.1:3001", spa_fallback: bool = True
) -> Iterator[str]:
    """nginx serving the site; yields its URL."""
    work = Path(tempfile.mkdtemp(prefix="flora-cdn-"))
    port = free_port()
    config = work / "nginx.conf"
    config.write_text(nginx_config(work, port, endpoint, bucket, backend, spa_fallback))
    proc = subprocess.Popen(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(config), "-p", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)
