"""Test hosts: a systemd container under podman driven by molecule, and the services it reaches on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

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
    """The test host with the fixture app's main branch live (a no-op converge when already bootstrapped).

    When test_bootstrap converged this host and its idempotence run proved a second converge changes nothing,
    and the same release still serves, the no-op converge is skipped: it is the slowest minute of the suite.
    """
    proven = host_services.get("idempotent_release")
    if not (proven and live_release() == proven and wait_for_health(timeout=5) == 200):
        assert molecule(host_services, "bootstrap", "create").returncode == 0
        stack.authorize_ssh(host_services)
        converge = molecule(host_services, "bootstrap", "converge")
        assert converge.returncode == 0, converge.stdout[-4000:]
    else:
        stack.authorize_ssh(host_services)
    return host_services


def live_release() -> str:
    """The release the test host's current link points to, or "" when there is none (or no host)."""
    result = subprocess.run(
        ["podman", "exec", HOST, "readlink", "/home/ubuntu/Flora/current"],
        env=stack.podman_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def molecule(
    services: dict, scenario: str, command: str, *extra: str, options: list[str] | None = None
) -> subprocess.CompletedProcess:
    """``molecule <command> -s <scenario> <options> -- <extra>``: ``extra`` goes to ansible-playbook."""
    cmd = [str(Path(sys.executable).parent / "molecule"), command, "-s", scenario, *(options or [])]
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


def container_running(name: str) -> bool:
    state = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.Running}}", name],
        env=stack.podman_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return state.stdout.strip() == "true"


@contextmanager
def host_in_place_of_the_test_host(services: dict, name: str, work: Path) -> Iterator[dict]:
    """A fresh test host ``name`` (1 GiB, like the others) on the test host's ports, 3001 and SSH on 2222, while the
    test host is stopped; yields the services with an inventory of this host. The test host is started again after."""
    was_running = container_running(HOST)
    if was_running:
        subprocess.run(
            ["podman", "stop", "--time", "30", HOST], env=stack.podman_env(), check=True, capture_output=True
        )
    inventory = work / "inventory"
    shutil.copytree(services["inventory"] / "group_vars", inventory / "group_vars")
    hosts = yaml.safe_load((services["inventory"] / "hosts.yml").read_text())
    (connection,) = hosts["flora_backend"]["hosts"].values()
    hosts["flora_backend"]["hosts"] = {name: connection}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    other = dict(services, host=name, inventory=inventory)
    try:
        stack.start_test_host(other)
        yield other
    finally:
        stack.remove_test_host(other)
        if was_running:
            subprocess.run(["podman", "start", HOST], env=stack.podman_env(), check=True, capture_output=True)
            assert wait_for_health() == 200
