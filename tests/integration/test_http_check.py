"""flora.deploy.http_check through ansible-playbook against an HTTP server on loopback: methods, bodies,
headers, and retries while a service is still starting."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Service(ThreadingHTTPServer):
    """/health answers 503 to its first `starting` requests, then 200; /hook answers 400 to a POST without a
    signature header and records what it was sent."""

    def __init__(self, starting: int):
        self.starting = starting
        self.requests: list[tuple[str, str, bytes, str | None]] = []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Service

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.server.requests.append(("GET", self.path, b"", None))
        if self.path != "/health":
            self._answer(404)
            return
        self.server.starting -= 1
        self._answer(503 if self.server.starting >= 0 else 200)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(("POST", self.path, body, self.headers.get("Content-Type")))
        self._answer(400 if self.path == "/hook" and not self.headers.get("Stripe-Signature") else 404)

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    servers = []

    def start(starting: int = 0) -> Service:
        server = Service(starting)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def check(run_playbook, tmp_path):
    def run(**check_args) -> dict:
        result = run_playbook("http_check/check.yml", {"check_args": check_args})
        assert result.rc == 0, result
        return json.loads((tmp_path / "result.json").read_text())

    return run


def urls(server: Service) -> list[dict]:
    base = f"http://127.0.0.1:{server.server_port}"
    return [
        {"url": f"{base}/health"},
        {
            "name": "webhook refuses an unsigned call",
            "url": f"{base}/hook",
            "method": "post",
            "body": '{"id": "evt_1"}',
            "headers": {"Content-Type": "application/json"},
            "status": 400,
        },
    ]


def test_waits_for_a_starting_service_and_reads_only_what_failed_again(check, service):
    server = service(starting=2)

    result = check(urls=urls(server), retries=5, delay=0.2)

    assert not result.get("failed"), result
    assert not result["changed"]
    assert result["attempts"] == 3
    assert [c["status"] for c in result["checked"]] == [200, 400]
    assert [r for r in server.requests if r[1] == "/health"] == [("GET", "/health", b"", None)] * 3
    # The POST passed the first time and was not sent again.
    assert [r for r in server.requests if r[1] == "/hook"] == [
        ("POST", "/hook", b'{"id": "evt_1"}', "application/json")
    ]


def test_fails_naming_each_check_that_still_fails(check, service):
    server = service(starting=100)
    checks = urls(server)
    checks[1]["url"] = checks[1]["url"].replace("/hook", "/missing")

    result = check(urls=checks, retries=1, delay=0)

    assert result["failed"]
    assert result["attempts"] == 2
    assert result["failures"] == [
        f"{checks[0]['url']} answered 503; expected 200",
        f"webhook refuses an unsigned call: POST {checks[1]['url']} answered 404; expected 400",
    ]
    assert result["msg"] == "; ".join(result["failures"])


def test_check_mode_reads_too_and_negative_retries_are_refused(run_playbook, tmp_path, service):
    server = service()
    result = run_playbook("http_check/check.yml", {"check_args": {"urls": urls(server)}}, "--check")
    assert result.rc == 0, result
    assert json.loads((tmp_path / "result.json").read_text())["attempts"] == 1
    assert len(server.requests) == 2

    result = run_playbook("http_check/check.yml", {"check_args": {"urls": urls(server), "retries": -1}})
    assert json.loads((tmp_path / "result.json").read_text())["msg"] == "retries and delay must not be negative"
