"""Test hosts: a systemd container under podman driven by molecule, and the services it reaches on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, ensure_collection_link
from tests.support import stack

HOST = "flora-bootstrap"  # the platform name in molecule/bootstrap/molecule.yml


@pytest.fixture(scope="session")
def host_services(tmp_path_factory):
    """Moto (with the Flora parameters), PostgreSQL, the fixture app over git://, the agent stand-in over HTTP."""
    ensure_collection_link()
    stack.build_test_host_image()
    with stack.local_stack(tmp_path_factory.mktemp("stack"), HOST) as services:
        yield services
        molecule(services, "bootstrap", "destroy")


@pytest.fixture(scope="session")
def bootstrapped_host(host_services):
    """The test host with the fixture app's main branch live (a no-op converge when already bootstrapped)."""
    assert molecule(host_services, "bootstrap", "create").returncode == 0
    stack.authorize_ssh(host_services)
    converge = molecule(host_services, "bootstrap", "converge")
    assert converge.returncode == 0, converge.stdout[-4000:]
    return host_services


def molecule(services: dict, scenario: str, command: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).parent / "molecule"), command, "-s", scenario]
    if extra:
        cmd += ["--", *extra]
    return subprocess.run(cmd, cwd=REPO, env=services["env"], capture_output=True, text=True, timeout=1800, check=False)


def wait_for_health(url: str = "http://127.0.0.1:3001/api/health", timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            if time.monotonic() > deadline:
                return 0
            time.sleep(1)
