"""Test hosts: systemd containers under podman driven by molecule, and the services they reach on loopback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import COLLECTIONS, REPO, ensure_collection_link
from tests.support import hostside, localaws

CONTAINERS_CONF = REPO / "molecule" / "shared" / "containers.conf"
STAND_IN = REPO / "tests" / "fixtures" / "cloudwatch-agent-stand-in"


def podman_env() -> dict:
    return dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))


@pytest.fixture(scope="session")
def test_host_image():
    subprocess.run([str(REPO / "molecule" / "shared" / "build-image.sh")], check=True, env=podman_env())


@pytest.fixture(scope="session")
def host_services(test_host_image, tmp_path_factory):
    """Moto (with the Flora parameters), PostgreSQL, the fixture app over git://, the agent stand-in over HTTP."""
    ensure_collection_link()
    logs = tmp_path_factory.mktemp("services")
    packages = hostside.shared_tmpdir("flora-packages-")
    deb = packages / "amazon-cloudwatch-agent.deb"
    subprocess.run([str(STAND_IN / "build.sh"), str(deb)], check=True, capture_output=True)
    checksum = "sha256:" + hashlib.sha256(deb.read_bytes()).hexdigest()
    git_base = hostside.shared_tmpdir("flora-git-")
    hostside.fixture_repository(git_base)
    password = localaws.FLORA_SECURE_PARAMETERS["db_password"]
    username = localaws.FLORA_STRING_PARAMETERS["db_username"]
    with (
        localaws.moto_server(logs / "moto.log") as endpoint,
        hostside.postgres("flora_db", username, password) as pg_port,
        hostside.git_daemon(git_base) as git_url,
        hostside.file_server(packages) as files_url,
    ):
        localaws.seed_flora_parameters(endpoint)
        env = podman_env()
        env.update(localaws.aws_environment(endpoint))
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "FLORA_COLLECTIONS_PATH": str(COLLECTIONS),
                "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
                "FLORA_TEST_AWS_ENDPOINT": endpoint,
                "FLORA_TEST_REPO_URL": f"{git_url}/flora.git",
                "FLORA_TEST_PG_PORT": str(pg_port),
                "FLORA_TEST_CWAGENT_URL": f"{files_url}/amazon-cloudwatch-agent.deb",
                "FLORA_TEST_CWAGENT_CHECKSUM": checksum,
                "FLORA_SHARED_DIR": str(REPO.parent / "shared"),
                "ANSIBLE_NOCOLOR": "1",
                "PY_COLORS": "0",
            }
        )
        yield {"env": env, "endpoint": endpoint, "git_base": git_base, "pg_port": pg_port}


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
