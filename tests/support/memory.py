"""What a test host's processes use of its memory limit, read from the container's cgroup (cgroups v1).

``free`` inside a container shows the machine's memory, not the container's limit. The cgroup's counters are the
ones the kernel's OOM killer acts on: memory.max_usage_in_bytes (page cache included, which the kernel reclaims
under pressure), the resident memory of its processes (total_rss in memory.stat, sampled) and the number of OOM
kills (memory.oom_control).
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Self

CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")


def cgroup_dir(container: str, env: dict) -> Path:
    path = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.CgroupPath}}", container],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return CGROUP_MEMORY / path.lstrip("/")


def oom_kills(directory: Path) -> int:
    for line in (directory / "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def rss(directory: Path) -> int:
    for line in (directory / "memory.stat").read_text().splitlines():
        if line.startswith("total_rss "):
            return int(line.split()[1])
    return 0


class MemoryWatch:
    """Peak memory of a container while the block runs, and the OOM kills in it."""

    def __init__(self, container: str, env: dict, interval: float = 0.1):
        self.directory = cgroup_dir(container, env)
        self.interval = interval
        self.limit = int((self.directory / "memory.limit_in_bytes").read_text())
        self.peak_rss = 0
        self.peak_usage = 0
        self.oom_kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, rss(self.directory))
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        # The kernel's own high-water mark, from now on.
        (self.directory / "memory.max_usage_in_bytes").write_text("0")
        self._oom_before = oom_kills(self.directory)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_usage = int((self.directory / "memory.max_usage_in_bytes").read_text())
        self.oom_kills = oom_kills(self.directory) - self._oom_before

    def report(self) -> str:
        mib = 1024 * 1024
        return (
            f"peak resident memory {self.peak_rss / mib:.0f} MiB, peak use with page cache "
            f"{self.peak_usage / mib:.0f} MiB of a {self.limit / mib:.0f} MiB limit, {self.oom_kills} OOM kills"
        )
