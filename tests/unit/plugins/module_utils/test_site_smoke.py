from __future__ import annotations

from ansible_collections.flora.deploy.plugins.module_utils.site_smoke import analyse, console_text, find_browser

S = "session-1"


def event(method: str, session: str = S, **params) -> dict:
    return {"method": method, "sessionId": session, "params": params}


def sent(request_id: str, url: str, kind: str = "Script") -> dict:
    return event("Network.requestWillBeSent", requestId=request_id, request={"url": url, "method": "GET"}, type=kind)


def response(request_id: str, url: str, status: int, kind: str = "Script", mime: str = "text/javascript") -> dict:
    return event(
        "Network.responseReceived",
        requestId=request_id,
        type=kind,
        response={"url": url, "status": status, "mimeType": mime},
    )


def test_a_clean_page_has_requests_and_no_failures():
    events = [
        sent("1", "https://site/", "Document"),
        response("1", "https://site/", 200, "Document", "text/html"),
        sent("2", "https://site/assets/a.js"),
        response("2", "https://site/assets/a.js", 200),
        event("Runtime.consoleAPICalled", type="log", args=[{"value": "hello"}]),
    ]
    requests, failures, document = analyse(events, S)
    assert failures == []
    assert document == "1"
    assert [(r["url"], r["status"]) for r in requests] == [("https://site/", 200), ("https://site/assets/a.js", 200)]


def test_every_kind_of_failure_is_named():
    events = [
        sent("1", "https://site/", "Document"),
        response("1", "https://site/", 200, "Document", "text/html"),
        sent("5", "https://site/assets/gone.css", "Stylesheet"),
        response("5", "https://site/assets/gone.css", 200, "Stylesheet", "text/html"),
        sent("2", "https://site/api/health", "Fetch"),
        response("2", "https://site/api/health", 502),
        sent("3", "https://site/assets/gone.js"),
        event("Network.loadingFailed", requestId="3", errorText="net::ERR_CONNECTION_REFUSED", canceled=False),
        sent("4", "https://site/slow.js"),
        event("Network.loadingFailed", requestId="4", errorText="net::ERR_ABORTED", canceled=True),
        event(
            "Runtime.exceptionThrown",
            exceptionDetails={"text": "Uncaught", "exception": {"description": "Error: boom"}},
        ),
        event("Runtime.consoleAPICalled", type="error", args=[{"value": "payment failed"}, {"type": "object"}]),
        event(
            "Log.entryAdded",
            entry={"level": "error", "source": "javascript", "text": "Refused", "url": "https://site/a.css"},
        ),
        event("Log.entryAdded", entry={"level": "error", "source": "network", "text": "Failed to load resource"}),
        response("9", "https://other/", 500) | {"sessionId": "another-page"},
    ]
    failures = analyse(events, S)[1]
    assert failures == [
        "GET https://site/assets/gone.css answered an HTML page for a stylesheet",
        "GET https://site/api/health answered 502",
        "GET https://site/assets/gone.js failed: net::ERR_CONNECTION_REFUSED",
        "Uncaught exception: Error: boom",
        "Console error: payment failed object",
        "Console error: Refused (https://site/a.css)",
    ]


def test_console_text_and_browser_lookup(tmp_path):
    assert console_text([{"value": 1}, {"description": "Error: x"}]) == "1 Error: x"
    assert find_browser(str(tmp_path / "missing")) is None
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_browser(str(fake)) == str(fake)
