"""A local stand-in for the app's CloudFront distribution: nginx on loopback, `/api/*` to the backend on port
3001, everything else from the frontend bucket on the moto server, `/` as index.html (the default root object)
and, like CloudFront's custom error response, index.html with 200 for a path the bucket does not have.

The bucket is private, as the app's is: nginx reads it through a signing origin in this process, which sends
each request to the bucket signed with SigV4 as an identity that may only get its objects, as CloudFront's
origin access control does (tests.support.identities.origin_access). Nothing reads the bucket anonymously, so a
bucket without a public-read policy serves the site, also while the emulator authorizes every request."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support import identities, localaws
from tests.support.hostside import free_port, stop_process, wait_for_port

# What the origin passes on to the bucket besides the signature; CloudFront forwards no query string to it.
FORWARDED_REQUEST_HEADERS = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
# Not relayed back: hop-by-hop headers, and the ones the origin's own response carries.
DROPPED_RESPONSE_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "server", "date"}
)


class SigningOriginHandler(BaseHTTPRequestHandler):
    """GET and HEAD of a key, relayed to the bucket as a SigV4-signed request with the origin access's credentials."""

    server: SigningOrigin

    def do_GET(self) -> None:
        self.relay()

    def do_HEAD(self) -> None:
        self.relay()

    def relay(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        request = AWSRequest(
            method=self.command,
            url=self.server.bucket_url + path,
            headers={name: self.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in self.headers},
        )
        S3SigV4Auth(self.server.credentials, "s3", localaws.REGION).add_auth(request)
        prepared = request.prepare()
        outgoing = urllib.request.Request(prepared.url, method=self.command, headers=dict(prepared.headers.items()))
        try:
            with urllib.request.urlopen(outgoing, timeout=30) as response:
                status, headers, body = response.status, response.headers.items(), response.read()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, e.headers.items(), e.read()
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in DROPPED_RESPONSE_HEADERS:
                self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


class SigningOrigin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, endpoint: str, bucket: str) -> None:
        super().__init__(("127.0.0.1", port), SigningOriginHandler)
        identity = identities.origin_access(endpoint, bucket)
        self.credentials = Credentials(identity.access_key_id, identity.secret_access_key)
        self.bucket_url = f"{endpoint.rstrip('/')}/{bucket}"


@contextmanager
def serving(server: ThreadingHTTPServer, name: str) -> Iterator[str]:
    """server serving on a thread of its own until the block ends; yields its URL."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def signing_origin(endpoint: str, bucket: str) -> Iterator[str]:
    """The bucket read with signed requests, served on loopback without them; yields its URL."""
    with serving(SigningOrigin(free_port(), endpoint, bucket), f"signing-origin-{bucket}") as url:
        yield url


class HealthBackendHandler(BaseHTTPRequestHandler):
    """/api/health answers 200, as the app's health route does; anything else 404."""

    def do_GET(self) -> None:
        found = urllib.parse.urlsplit(self.path).path == "/api/health"
        body = b'{"status":"ok"}' if found else b'{"error":"not found"}'
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


@contextmanager
def health_backend() -> Iterator[str]:
    """A backend that has only the health route, for a site whose build calls no other API; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), HealthBackendHandler)
    server.daemon_threads = True
    with serving(server, "health-backend") as url:
        yield url


def nginx_config(work: Path, port: int, origin: str, backend: str, spa_fallback: bool) -> str:
    """origin: where nginx reads the bucket's keys (the signing origin)."""
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
    """nginx serving the site, the bucket read with signed requests; yields its URL."""
    work = Path(tempfile.mkdtemp(prefix="flora-cdn-"))
    port = free_port()
    with signing_origin(endpoint, bucket) as origin:
        config = work / "nginx.conf"
        config.write_text(nginx_config(work, port, origin, backend, spa_fallback))
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
