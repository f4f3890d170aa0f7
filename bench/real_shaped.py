"""The emulated link the publish benchmarks cross, in front of the local AWS; the build is
tests/support/real_shaped.py's."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.support import localaws
from tests.support.real_shaped import MB, body

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def emulated_link(endpoint: str, rtt_ms: float = 30.0, mbit: float = 100.0):
    """The endpoint behind bench/slow_link.py; yields the proxied endpoint URL."""
    host_port = endpoint.removeprefix("http://")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.slow_link",
            "--upstream",
            host_port,
            "--rtt-ms",
            str(rtt_ms),
            "--mbit",
            str(mbit),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure_link(endpoint: str, bucket: str) -> str:
    """What the link does, measured: round trip of a small request on an open connection, upload and download rate."""
    s3 = localaws.boto3_client("s3", endpoint)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
    s3.head_bucket(Bucket=bucket)
    trips = []
    for dummy in range(10):
        start = time.perf_counter()
        s3.head_bucket(Bucket=bucket)
        trips.append(time.perf_counter() - start)
    data = body("link", 10 * MB)
    start = time.perf_counter()
    s3.put_object(Bucket=bucket, Key="link-test", Body=data)
    upload = time.perf_counter() - start
    start = time.perf_counter()
    s3.get_object(Bucket=bucket, Key="link-test")["Body"].read()
    download = time.perf_counter() - start
    s3.delete_object(Bucket=bucket, Key="link-test")
    return (
        f"The emulated link, measured: {statistics.median(trips) * 1000:.0f} ms for a request on an open connection, "
        f"10 MB up in {upload:.2f} s ({len(data) * 8 / upload / 1e6:.0f} Mbit/s), "
        f"down in {download:.2f} s ({len(data) * 8 / download / 1e6:.0f} Mbit/s)."
    )
