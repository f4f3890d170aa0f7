# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read URLs in parallel and compare what they answer with what was expected (status, headers, content hash).

Failing URLs can be read again a number of times, for a service that is still starting. Used by
flora.deploy.http_check and by flora.deploy.release_activate's health and smoke checks.
"""

from __future__ import annotations

import hashlib
import http.client
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import open_url


@dataclass(frozen=True)
class Expectation:
    url: str
    status: int = 200
    cache_control: str | None = None
    content_type: str | None = None
    sha256: str | None = None
    # The request: GET by default; a name, when given, leads the failure line.
    method: str = "GET"
    body: bytes | None = None
    headers: t.Mapping[str, str] = field(default_factory=dict)
    name: str | None = None


@dataclass(frozen=True)
class Observation:
    """What a URL answered; status 0 and `error` when it did not answer."""

    status: int
    cache_control: str | None = None
    content_type: str | None = None
    sha256: str | None = None
    seconds: float = 0.0
    error: str | None = None


def describe_failure(expected: Expectation, seen: Observation) -> str | None:
    """None when the answer is what was expected, else one line naming what was seen and what was expected."""
    mismatched = (
        seen.status != expected.status
        or (expected.cache_control is not None and seen.cache_control != expected.cache_control)
        or (expected.content_type is not None and seen.content_type != expected.content_type)
        or (expected.sha256 is not None and seen.sha256 != expected.sha256)
    )
    if not mismatched:
        return None
    answered = str(seen.status) if seen.status else "nothing" + (f" ({seen.error})" if seen.error else "")
    got = [f"Cache-Control {seen.cache_control or '(none)'}", f"Content-Type {seen.content_type or '(none)'}"]
    wanted = [str(expected.status)]
    if expected.cache_control is not None:
        wanted.append(expected.cache_control)
    if expected.content_type is not None:
        wanted.append(expected.content_type)
    if expected.sha256 is not None:
        got.append(f"sha256 {seen.sha256 or '(none)'}")
        wanted.append(f"sha256 {expected.sha256}")
    line = (
        f"{expected.url} answered {answered} with {', '.join(got[:-1])} and {got[-1]}; "
        f"expected {', '.join(wanted[:-1])} and {wanted[-1]}"
        if len(wanted) > 1
        else f"{expected.url} answered {answered}; expected {wanted[0]}"
    )
    if expected.method != "GET":
        line = f"{expected.method} {line}"
    return f"{expected.name}: {line}" if expected.name else line


Fetch = t.Callable[[Expectation], "tuple[int, t.Mapping[str, str], bytes]"]


def open_url_fetch(timeout: float, validate_certs: bool = True, agent: str = "flora.deploy.http_check") -> Fetch:
    """A Fetch with Ansible's open_url. A redirect is an answer to report, not one to follow."""

    def fetch(expected: Expectation) -> tuple[int, t.Mapping[str, str], bytes]:
        try:
            response = open_url(
                expected.url,
                method=expected.method,
                data=expected.body,
                headers=dict(expected.headers),
                timeout=timeout,
                validate_certs=validate_certs,
                follow_redirects="none",
                http_agent=agent,
            )
        except HTTPError as e:
            return e.code, dict(e.headers or {}), e.read() if hasattr(e, "read") else b""
        with response:
            return response.status, dict(response.headers), response.read()

    return fetch


def observe(fetch: Fetch, expected: Expectation) -> Observation:
    """fetch(expected) -> (status, headers, body); network and protocol errors become an observation without a status."""
    start = time.monotonic()
    try:
        status, headers, body = fetch(expected)
    except (OSError, ValueError, http.client.HTTPException) as e:
        return Observation(status=0, seconds=time.monotonic() - start, error=str(e) or type(e).__name__)
    lowered = {key.lower(): value for key, value in headers.items()}
    return Observation(
        status=status,
        cache_control=lowered.get("cache-control"),
        content_type=lowered.get("content-type"),
        sha256=hashlib.sha256(body).hexdigest() if expected.sha256 is not None else None,
        seconds=time.monotonic() - start,
    )


def _observe_all(expectations: t.Sequence[Expectation], fetch: Fetch, workers: int) -> list[Observation]:
    """Observations in the order of `expectations`, read on at most `workers` threads."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(expectations)))) as pool:
        return list(pool.map(lambda e: observe(fetch, e), expectations))


def check_all(
    expectations: t.Sequence[Expectation],
    fetch: Fetch,
    workers: int,
) -> tuple[list[Observation], list[str]]:
    """Observations in the order of `expectations`, and the failure lines."""
    return check_until(expectations, fetch, workers, retries=0, delay=0)[:2]


def check_until(
    expectations: t.Sequence[Expectation],
    fetch: Fetch,
    workers: int,
    retries: int,
    delay: float,
    sleep: t.Callable[[float], None] = time.sleep,
) -> tuple[list[Observation], list[str], int]:
    """Every URL once, then up to `retries` more rounds `delay` seconds apart over the URLs that failed.

    Returns the last observation of each URL (in the order of `expectations`), the failure lines of the last
    round, and the number of rounds.
    """
    seen = _observe_all(expectations, fetch, workers)
    lines = [describe_failure(e, s) for e, s in zip(expectations, seen)]
    attempts = 1
    while any(lines) and attempts <= retries:
        sleep(delay)
        failing = [i for i, line in enumerate(lines) if line]
        for i, observation in zip(failing, _observe_all([expectations[i] for i in failing], fetch, workers)):
            seen[i], lines[i] = observation, describe_failure(expectations[i], observation)
        attempts += 1
    return seen, [line for line in lines if line], attempts
