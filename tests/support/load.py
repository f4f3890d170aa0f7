"""A steady load on loopback that counts failed requests (bounded in time and count).

Each request opens a connection of its own, as a browser's first request or a load balancer's health check does.
``threads`` clients send at once: a replaced worker is then always in the middle of some request.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Self


class SteadyLoad:
    def __init__(
        self,
        url: str,
        interval: float = 0.02,
        max_seconds: float = 600,
        max_requests: int = 50000,
        threads: int = 1,
    ):
        self.url = url
        self.interval = interval
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.sent = 0
        self.failures: list[str] = []
        # When each failure happened (time.time(), to compare with task start and end times), in their order.
        self.failure_times: list[float] = []
        self.bodies: set[str] = set()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _client in range(threads)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop_event.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self.sent >= self.max_requests:
                    return
                self.sent += 1
            failure, body = None, None
            try:
                # A slow answer while a build shares the CPUs is not a dropped request; no answer in 30 s is.
                with urllib.request.urlopen(self.url, timeout=30) as response:
                    body = response.read().decode()
                    if response.status != 200:
                        failure = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                failure = str(exc)
            with self._lock:
                if failure:
                    self.failures.append(failure)
                    self.failure_times.append(time.time())
                if body is not None:
                    self.bodies.add(body.split('"timestamp"')[0])
            time.sleep(self.interval)

    def downtime(self) -> float:
        """Seconds from the first failed request to the last one (0 when none failed)."""
        return max(self.failure_times) - min(self.failure_times) if self.failure_times else 0.0

    def stop(self) -> SteadyLoad:
        self._stop_event.set()
        for thread in self._threads:
            thread.join(timeout=40)
        return self

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
