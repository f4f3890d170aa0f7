"""module_utils/http_check.py's open_url_fetch with check_until, as flora.deploy.release_activate runs the health and
smoke checks after a reload, against an HTTP server on loopback."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.http_check import Expectation, check_until, open_url_fetch


class App(BaseHTTPRequestHandler):
    """/api/health: 503 for the first `starting` requests, then 200; POST /hook: 400 unless signed;
    /old: a redirect."""

    def answer(self, status: int, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.server.seen.append(("GET", self.path, b""))
        if self.path == "/api/health":
            self.server.starting -= 1
            self.answer(503 if self.server.starting >= 0 else 200)
        elif self.path == "/old":
            self.answer(301, {"Location": "/api/health"})
        else:
            self.answer(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(("POST", self.path, body, self.headers.get("Content-Type")))
        self.answer(400 if self.path == "/hook" and "Stripe-Signature" not in self.headers else 404)

    def log_message(self, *args):
        pass


@pytest.fixture
def app():
    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    server.starting, server.seen = 0, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def run(app, checks, retries=0):
    base = f"http://127.0.0.1:{app.server_port}"
    expectations = [
        Expectation(
            url=base + check["url"],
            name=check.get("name"),
            method=check.get("method", "GET").upper(),
            body=check["body"].encode() if "body" in check else None,
            headers=check.get("headers", {}),
            status=check.get("status", 200),
        )
        for check in checks
    ]
    seen, failures, attempts = check_until(expectations, open_url_fetch(5), workers=8, retries=retries, delay=0.05)
    return seen, failures, attempts, base


HOOK = {
    "name": "Stripe webhook refuses an unsigned call",
    "url": "/hook",
    "method": "post",
    "body": "{}",
    "headers": {"Content-Type": "application/json"},
    "status": 400,
}


def test_retries_while_the_app_starts_and_sends_each_check_as_given(app):
    app.starting = 2

    seen, failures, attempts, _base = run(app, [{"name": "health check", "url": "/api/health"}, HOOK], retries=3)

    assert failures == []
    assert attempts == 3
    assert [observed.status for observed in seen] == [200, 400]
    assert [s[:2] for s in app.seen].count(("GET", "/api/health")) == 3
    # The POST answered as expected at once and was not sent again.
    assert [s for s in app.seen if s[0] == "POST"] == [("POST", "/hook", b"{}", "application/json")]


def test_fails_with_one_line_per_check_that_still_fails_and_follows_no_redirect(app):
    app.starting = 100

    _seen, failures, attempts, base = run(app, [{"name": "health check", "url": "/api/health"}, {"url": "/old"}], 1)

    assert attempts == 2
    assert failures == [
        f"health check: {base}/api/health answered 503; expected 200",
        f"{base}/old answered 301; expected 200",
    ]


def test_an_app_that_does_not_answer_is_a_failure():
    seen, failures, _attempts = check_until(
        [Expectation(url="http://127.0.0.1:9/api/health")], open_url_fetch(2), workers=1, retries=0, delay=0
    )
    assert seen[0].status == 0
    assert failures[0].startswith("http://127.0.0.1:9/api/health answered nothing")
