from __future__ import annotations

import hashlib
import threading

from ansible_collections.flora.deploy.plugins.module_utils.http_check import (
    Expectation,
    Observation,
    check_all,
    check_until,
    describe_failure,
)

JS = "text/javascript; charset=utf-8"
IMMUTABLE = "public,max-age=31536000,immutable"


def test_a_matching_answer_is_no_failure():
    expected = Expectation("https://site/a.js", cache_control=IMMUTABLE, content_type=JS)
    assert describe_failure(expected, Observation(200, IMMUTABLE, JS)) is None


def test_headers_not_asked_for_are_not_checked():
    assert describe_failure(Expectation("https://site/a.js"), Observation(200, "no-store", "text/plain")) is None


def test_a_wrong_header_names_what_was_seen_and_expected():
    expected = Expectation("https://site/a.css", cache_control=IMMUTABLE, content_type="text/css; charset=utf-8")
    assert describe_failure(expected, Observation(200, IMMUTABLE, "text/plain")) == (
        f"https://site/a.css answered 200 with Cache-Control {IMMUTABLE} and Content-Type text/plain; "
        f"expected 200, {IMMUTABLE} and text/css; charset=utf-8"
    )


def test_a_wrong_status_alone():
    assert (
        describe_failure(Expectation("https://site/x"), Observation(404)) == "https://site/x answered 404; expected 200"
    )


def test_no_answer_and_a_wrong_body():
    expected = Expectation("https://site/index.html", sha256="ab" * 32)
    line = describe_failure(expected, Observation(0, error="timed out"))
    assert line.startswith("https://site/index.html answered nothing (timed out) with")
    line = describe_failure(expected, Observation(200, sha256="cd" * 32))
    assert line.endswith(f"sha256 {'cd' * 32}; expected 200 and sha256 {'ab' * 32}")


def test_check_all_runs_in_parallel_keeps_order_and_hashes_only_when_asked():
    running, peak, lock = [0], [0], threading.Lock()
    # The first four fetches wait for each other: they get through only when four run at once.
    together = threading.Barrier(4, timeout=30)

    def fetch(expected):
        url = expected.url
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            first = url.rsplit("/", 1)[-1] in {"0", "1", "2", "3"}
        if first:
            together.wait()
        with lock:
            running[0] -= 1
        if url.endswith("missing"):
            raise OSError("connection refused")
        return 200, {"Content-Type": JS, "cache-control": IMMUTABLE}, url.encode()

    expectations = [Expectation(f"https://site/{i}", content_type=JS) for i in range(8)]
    expectations.append(Expectation("https://site/hashed", sha256=hashlib.sha256(b"https://site/hashed").hexdigest()))
    expectations.append(Expectation("https://site/missing"))
    seen, failures = check_all(expectations, fetch, workers=4)
    assert peak[0] == 4
    assert [s.status for s in seen] == [200] * 9 + [0]
    assert seen[0].sha256 is None and seen[8].sha256 is not None
    assert seen[0].cache_control == IMMUTABLE
    assert failures == ["https://site/missing answered nothing (connection refused); expected 200"]
    assert check_all([], fetch, 4) == ([], [])


def test_a_named_check_with_another_method_says_so():
    expected = Expectation("http://host/api/webhooks/stripe", status=400, method="POST", name="Stripe webhook")
    assert describe_failure(expected, Observation(404)) == (
        "Stripe webhook: POST http://host/api/webhooks/stripe answered 404; expected 400"
    )
    assert describe_failure(expected, Observation(400)) is None


def test_check_until_reads_only_the_failing_urls_again_until_they_pass():
    calls, sleeps = [], []
    answers = {"http://host/health": [0, 500, 200], "http://host/hook": [400]}

    def fetch(expected):
        calls.append((expected.method, expected.url, expected.body))
        status = answers[expected.url].pop(0)
        if not status:
            raise ConnectionRefusedError("connection refused")
        return status, {}, b""

    expectations = [Expectation("http://host/health"), Expectation("http://host/hook", 400, method="POST", body=b"{}")]
    seen, failures, attempts = check_until(expectations, fetch, workers=2, retries=5, delay=2.5, sleep=sleeps.append)

    assert failures == []
    assert attempts == 3
    assert sleeps == [2.5, 2.5]
    assert [s.status for s in seen] == [200, 400]
    assert sorted(calls[:2]) == [("GET", "http://host/health", None), ("POST", "http://host/hook", b"{}")]
    assert calls[2:] == [("GET", "http://host/health", None)] * 2


def test_check_until_gives_up_after_its_retries_with_the_last_answer():
    sleeps = []

    def fetch(expected):
        return 500, {}, b""

    seen, failures, attempts = check_until(
        [Expectation("http://host/health")], fetch, workers=1, retries=2, delay=1, sleep=sleeps.append
    )
    assert attempts == 3 and len(sleeps) == 2
    assert failures == ["http://host/health answered 500; expected 200"]
    assert seen[0].status == 500
    no_retries = check_until([Expectation("http://host/health")], fetch, 1, 0, 1, sleep=sleeps.append)
    assert no_retries[2] == 1 and len(sleeps) == 2
