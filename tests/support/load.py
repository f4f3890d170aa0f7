"""A small steady load on loopback that counts failed requests (bounded in time and count)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Self


class SteadyLoad(threading.Thread):
    def __init__(self, url: str, interval: float = 0.02, max_seconds: float = 600, max_requests: int = 50000):
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.sent = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop_event.is_set() and time.monotonic() < deadline and self.sent < self.max_requests:
            self.sent += 1
            try:
                # A slow answer while a build shares the CPUs is not a dropped request; no answer in 30 s is.
                with urllib.request.urlopen(self.url, timeout=30) as response:
                    body = response.read().decode()
                    if response.status != 200:
                        self.failures.append(f"HTTP {response.status}")
                    self.bodies.add(body.split('"timestamp"')[0])
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(str(exc))
            time.sleep(self.interval)

    def stop(self) -> SteadyLoad:
        self._stop_event.set()
        self.join(timeout=40)
        return self

    def __enter__(self) -> Self:
        self.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
