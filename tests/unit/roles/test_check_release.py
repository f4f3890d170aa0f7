"""roles/backend_redeploy/files/check_release.py, the reload's checks, against an HTTP server on loopback, with
flora.deploy's http_check logic loaded from its file as the reload loads it."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HTTP_CHECK = REPO / "plugins" / "module_utils" / "http_check.py"
spec = importlib.util.spec_from_file_location("check_release", REPO / "roles/backend_redeploy/files/check_release.py")
check_release = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_release)


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


def run(app, capsys, urls, retries=0):
    base = f"http://127.0.0.1:{app.server_port}"
    checks = {"urls": [dict(url, url=base + url["url"]) for url in urls], "retries": retries, "delay": 0.05}
    code = check_release.main([str(HTTP_CHECK), json.dumps(checks)])
    out = capsys.readouterr()
    return code, out.out, out.err, base


HOOK = {
    "name": "Stripe webhook refuses an unsigned call",
    "url": "/hook",
    "method": "post",
    "body": "{}",
    "headers": {"Content-Type": "application/json"},
    "status": 400,
}


def test_retries_while_the_app_starts_and_sends_each_check_as_given(app, capsys):
    app.starting = 2

    code, out, err, _base = run(app, capsys, [{"name": "health check", "url": "/api/health"}, HOOK], retries=3)

    assert code == 0, err
    assert [line.split(" in ")[0] for line in out.splitlines()] == [
        "health check: 200",
        "Stripe webhook refuses an unsigned call: 400",
    ]
    assert [s[:2] for s in app.seen].count(("GET", "/api/health")) == 3
    # The POST answered as expected at once and was not sent again.
    assert [s for s in app.seen if s[0] == "POST"] == [("POST", "/hook", b"{}", "application/json")]


def test_fails_with_one_line_per_check_that_still_fails(app, capsys):
    app.starting = 100

    code, _out, err, base = run(
        app, capsys, [{"name": "health check", "url": "/api/health"}, {"url": "/old"}], retries=1
    )

    assert code == check_release.EXIT_CHECK_FAILED
    assert err.strip() == (
        f"checks failed after 2 round(s): health check: {base}/api/health answered 503; expected 200; "
        f"{base}/old answered 301; expected 200"
    )


def test_an_app_that_does_not_answer_is_a_failure(capsys):
    checks = {"urls": [{"url": "http://127.0.0.1:9/api/health"}], "retries": 0, "delay": 0}
    assert check_release.main([str(HTTP_CHECK), json.dumps(checks)]) == check_release.EXIT_CHECK_FAILED
    assert "http://127.0.0.1:9/api/health answered nothing" in capsys.readouterr().err
