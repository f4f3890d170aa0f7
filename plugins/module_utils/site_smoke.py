# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Load pages in headless Chromium over the DevTools protocol (on a pipe, no port) and report what went wrong:
failed requests, console errors, uncaught exceptions, an unexpected document, an API answering otherwise."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass, field

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Requests that must never be answered with an HTML page.
SUBRESOURCE_TYPES = ("Script", "Stylesheet", "Image", "Font", "Media")


class BrowserError(Exception):
    pass


def find_browser(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else shutil.which(explicit)
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """Chromium with --remote-debugging-pipe: commands on fd 3, answers and events on fd 4, NUL-terminated JSON."""

    def __init__(self, executable: str, timeout: float = 30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="flora-site-smoke-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # Chromium reads commands on fd 3 and writes on fd 4: a shell puts the pipe ends there and execs it.
        wiring = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}'
        self.proc = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                wiring,
                executable,
                "--headless=new",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,900",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        with self._cond:
            self._next_id += 1
            message_id = self._next_id
        message = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while message_id not in self._answers:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise BrowserError(
                        f"The browser did not answer {method}" + (" (it exited)" if self._closed else "")
                    )
                self._cond.wait(remaining)
            answer = self._answers.pop(message_id)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def wait_for(self, predicate: t.Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return predicate()
                self._cond.wait(min(remaining, 0.1))
            return True

    def close(self) -> None:
        try:
            if not self._closed:
                self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class PageReport:
    url: str
    requests: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    document_sha256: str | None = None
    seconds: float = 0.0
    screenshot: str | None = None

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "url": self.url,
            "requests": self.requests,
            "failures": self.failures,
            "document_sha256": self.document_sha256,
            "seconds": round(self.seconds, 3),
            "screenshot": self.screenshot,
        }


def console_text(args: t.Sequence[t.Mapping[str, t.Any]]) -> str:
    parts = []
    for arg in args:
        if "value" in arg:
            parts.append(str(arg["value"]))
        else:
            parts.append(str(arg.get("description") or arg.get("type")))
    return " ".join(parts)


def analyse(events: t.Sequence[t.Mapping[str, t.Any]], session: str) -> tuple[list[dict], list[str], str | None]:
    """(requests, failures, request id of the document) from one page's DevTools events."""
    requests: dict[str, dict] = {}
    failures: list[str] = []
    document = None
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        # Inline data (data: URLs, the browser's own error page images) is not a request to anybody.
        url = (params.get("request") or params.get("response") or {}).get("url", "")
        if url.startswith("data:"):
            continue
        if method == "Network.requestWillBeSent":
            request = params["request"]
            requests[params["requestId"]] = {"url": request["url"], "method": request.get("method", "GET")}
            if params.get("type") == "Document" and document is None:
                document = params["requestId"]
        elif method == "Network.responseReceived":
            entry = requests.setdefault(params["requestId"], {"url": params["response"]["url"], "method": "GET"})
            status = int(params["response"].get("status", 0))
            kind, mime = params.get("type"), params["response"].get("mimeType", "")
            entry.update({"status": status, "type": kind, "mime_type": mime})
            if status >= 400:
                failures.append(f"{entry['method']} {entry['url']} answered {status}")
            elif kind in SUBRESOURCE_TYPES and mime == "text/html":
                # A missing file answered by the SPA fallback (CloudFront's custom error response): index.html.
                failures.append(f"{entry['method']} {entry['url']} answered an HTML page for a {kind.lower()}")
        elif method == "Network.loadingFailed":
            if params["requestId"] not in requests:
                continue
            entry = requests[params["requestId"]]
            entry["error"] = params.get("errorText")
            if not params.get("canceled"):
                failures.append(f"{entry['method']} {entry['url']} failed: {params.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = (details.get("exception") or {}).get("description") or details.get("text")
            failures.append(f"Uncaught exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            failures.append(f"Console error: {console_text(params.get('args', []))}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            # Network errors are reported above from the network events themselves.
            if entry.get("level") == "error" and entry.get("source") != "network":
                where = f" ({entry['url']})" if entry.get("url") else ""
                failures.append(f"Console error: {entry.get('text')}{where}")
    return list(requests.values()), failures, document


def load_page(
    browser: Browser,
    url: str,
    timeout: float,
    settle: float = 0.5,
    api_checks: t.Sequence[t.Mapping[str, t.Any]] = (),
    expected_sha256: str | None = None,
    screenshot_path: t.Callable[[], str] | None = None,
) -> PageReport:
    """Load url in a new tab, wait for the load event and a quiet network, then run api_checks from the page.

    expected_sha256: what the document must hash to; screenshot_path: gives a file for a failing page's PNG.
    """
    report = PageReport(url=url)
    start = time.monotonic()
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Network", "Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        first_event = len(browser.events)
        navigation = browser.send("Page.navigate", {"url": url}, session=session)
        if navigation.get("errorText"):
            report.failures.append(f"GET {url} failed: {navigation['errorText']}")

        def page_events():
            return [e for e in browser.events[first_event:] if e.get("sessionId") == session]

        loaded = browser.wait_for(lambda: any(e.get("method") == "Page.loadEventFired" for e in page_events()), timeout)
        if not loaded and not navigation.get("errorText"):
            report.failures.append(f"{url} did not finish loading within {timeout:g} s")

        def quiet() -> bool:
            sent, done = set(), set()
            for event in page_events():
                if event.get("method") == "Network.requestWillBeSent":
                    sent.add(event["params"]["requestId"])
                elif event.get("method") in ("Network.loadingFinished", "Network.loadingFailed"):
                    done.add(event["params"]["requestId"])
            return sent <= done

        quiet_since = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if quiet():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    break
            else:
                quiet_since = None
            time.sleep(0.05)

        for check in api_checks:
            path, want = check["path"], int(check.get("status", 200))
            expression = (
                f"fetch({json.dumps(path)}, {{cache: 'no-store'}})"
                ".then(r => r.status).catch(e => 'error: ' + e.message)"
            )
            answer = browser.send(
                "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, session
            )
            got = answer.get("result", {}).get("value")
            if got != want:
                report.failures.append(f"GET {path} from the page answered {got}; expected {want}")

        # The api checks' own requests are part of what the page made.
        time.sleep(0.1)
        requests, failures, document = analyse(page_events(), session)
        report.requests = requests
        report.failures.extend(f for f in failures if f not in report.failures)
        if document is not None:
            try:
                body = browser.send("Network.getResponseBody", {"requestId": document}, session)
                content = base64.b64decode(body["body"]) if body.get("base64Encoded") else body.get("body", "").encode()
                report.document_sha256 = hashlib.sha256(content).hexdigest()
            except BrowserError:
                report.document_sha256 = None
        if expected_sha256 and report.document_sha256 != expected_sha256:
            report.failures.append(
                f"the document served has sha256 {report.document_sha256 or '(none)'}, not the index.html just "
                f"published (sha256 {expected_sha256})"
            )
        if report.failures and screenshot_path:
            try:
                shot = browser.send("Page.captureScreenshot", {"format": "png"}, session)
                path = screenshot_path()
                with open(path, "wb") as handle:
                    handle.write(base64.b64decode(shot["data"]))
                report.screenshot = path
            except (BrowserError, OSError):
                report.screenshot = None
    finally:
        try:
            browser.send("Target.closeTarget", {"targetId": target})
        except BrowserError:
            pass
        report.seconds = time.monotonic() - start
    return report
