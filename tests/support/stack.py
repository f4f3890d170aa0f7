"""The local stand-in for production: what tests, the demo and the benchmarks deploy to.

A moto server with the Flora parameters, a private PostgreSQL, the fixture app over git://, the CloudWatch
agent stand-in over HTTP, and an inventory whose group_vars point a systemd test host at all of them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

from tests.support import hostside, localaws

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "molecule" / "shared" / "containers.conf"
STAND_IN = REPO / "tests" / "fixtures" / "cloudwatch-agent-stand-in"
IMAGE = "localhost/flora-testhost:bookworm"


def podman_env() -> dict:
    return dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))


def build_test_host_image() -> None:
    subprocess.run([str(REPO / "molecule" / "shared" / "build-image.sh")], check=True, env=podman_env())


def write_inventory(directory: Path, host: str, variables: dict) -> None:
    """group_vars shared by molecule (linked in molecule.yml) and direct playbook runs, and a hosts file."""
    (directory / "group_vars").mkdir(parents=True)
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables))
    hosts = {"flora_backend": {"hosts": {host: {"ansible_connection": "containers.podman.podman"}}}}
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts))


@contextmanager
def local_stack(work: Path, host: str) -> Iterator[dict]:
    """Start every service the test host reaches; yields addresses, the inventory and the environment."""
    with ExitStack() as stack:
        packages = hostside.shared_tmpdir("flora-packages-")
        stack.callback(subprocess.run, ["rm", "-rf", str(packages)], check=False)
        deb = packages / "amazon-cloudwatch-agent.deb"
        subprocess.run([str(STAND_IN / "build.sh"), str(deb)], check=True, capture_output=True)
        git_base = hostside.shared_tmpdir("flora-git-")
        stack.callback(subprocess.run, ["rm", "-rf", str(git_base)], check=False)
        commits = hostside.fixture_repository(git_base)
        endpoint = stack.enter_context(localaws.moto_server(work / "moto.log"))
        localaws.seed_flora_parameters(endpoint)
        pg_port = stack.enter_context(
            hostside.postgres(
                "flora_db",
                localaws.FLORA_STRING_PARAMETERS["db_username"],
                localaws.FLORA_SECURE_PARAMETERS["db_password"],
            )
        )
        git_url = stack.enter_context(hostside.git_daemon(git_base))
        files_url = stack.enter_context(hostside.file_server(packages))
        inventory = work / "inventory"
        write_inventory(
            inventory,
            host,
            {
                "flora_aws_endpoint_url": endpoint,
                "flora_aws_access_key": "testing",
                "flora_aws_secret_key": "testing",
                "backend_release_repo_url": f"{git_url}/flora.git",
                "app_env_db_host": "127.0.0.1",
                "app_env_db_port": pg_port,
                "app_env_site_url": "https://flora.example",
                "nodejs_install_method": "binary",
                # The test network inspects TLS; the image carries the host's CA bundle.
                "nodejs_npm_cafile": "/etc/ssl/certs/ca-certificates.crt",
                "cloudwatch_agent_package_url": f"{files_url}/amazon-cloudwatch-agent.deb",
                "cloudwatch_agent_package_checksum": "sha256:" + hashlib.sha256(deb.read_bytes()).hexdigest(),
            },
        )
        env = podman_env()
        env.update(localaws.aws_environment(endpoint))
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
                "FLORA_COLLECTIONS_PATH": str(REPO / ".collections"),
                "FLORA_TEST_INVENTORY": str(inventory),
                "FLORA_TEST_PG_PORT": str(pg_port),
                "FLORA_SHARED_DIR": str(REPO.parent / "shared"),
                "ANSIBLE_NOCOLOR": "1",
                "PY_COLORS": "0",
            }
        )
        yield {
            "env": env,
            "endpoint": endpoint,
            "commits": commits,
            "inventory": inventory,
            "pg_port": pg_port,
            "host": host,
        }


def playbook_command(stack: dict, name: str, *extra: str) -> list[str]:
    """ansible-playbook playbooks/<name> against the test host, as a user runs it."""
    inventory = str(stack["inventory"] / "hosts.yml")
    return [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory,
        str(REPO / "playbooks" / name),
        *extra,
    ]


def playbook(stack: dict, name: str, *extra: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        playbook_command(stack, name, *extra),
        cwd=REPO,
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def host_exec(host: str, *cmd: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, *cmd], env=podman_env(), check=True, capture_output=True, text=True
    ).stdout.strip()
