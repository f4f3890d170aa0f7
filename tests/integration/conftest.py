"""Integration fixtures: a moto server process on loopback that can authorize each request against the caller's IAM
policies (tests/support/iam_server.py), and a helper that runs ansible-playbook against it, as one of the
identities the collection runs as (tests/support/identities.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.support import identities, localaws

REPO = Path(__file__).resolve().parents[2]
TARGETS = Path(__file__).resolve().parent / "targets"
from tests.conftest import COLLECTIONS, ensure_collection_link


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> str:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with localaws.moto_server(log, authorizing=True) as endpoint:
        yield endpoint


@pytest.fixture
def aws(moto_endpoint):
    """A clean local AWS for each test. It lets every request through (the tests' own setup and checks, with the
    emulator's default keys) until identities.enforcing, inside which it authorizes each one against the caller's
    IAM policies, per resource."""
    identities.set_authorization(moto_endpoint, "inf")
    localaws.reset(moto_endpoint)
    identities.forget(moto_endpoint)
    yield moto_endpoint
    identities.set_authorization(moto_endpoint, "inf")


class PlaybookResult:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr

    def __repr__(self) -> str:
        return f"PlaybookResult(rc={self.rc})\n{self.output}"


# A play that reaches no host: one task on the controller, which prints "the play ran".
CONTROLLER_PLAY = [
    {
        "name": "A play on the controller",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "Say something", "ansible.builtin.debug": {"msg": "the play ran"}}],
    }
]


def playbook_environment(endpoint: str, tmp_path: Path) -> dict:
    """What ansible-playbook runs with in these tests: this checkout as flora.deploy, the local AWS."""
    env = dict(os.environ)
    env.update(localaws.aws_environment(endpoint))
    env.update(
        {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote-tmp"),
        }
    )
    return env


def playbook_runner(endpoint: str, tmp_path: Path):
    """run(playbook, extra_vars, *args, env=..., identity=...): ansible-playbook against the local AWS at endpoint.

    Given an identity, the run has its credentials and the emulator authorizes every request. The identity is an
    Identity, or the name of one of the environment's (identities.Identities: "instance", "deployer", "inventory"),
    made with the policies the collection ships for the resources the run's variables name."""
    ensure_collection_link()

    def run(
        playbook: str,
        extra_vars: dict | None = None,
        *args: str,
        env: dict | None = None,
        identity: identities.Identity | str | None = None,
    ) -> PlaybookResult:
        full_env = playbook_environment(endpoint, tmp_path)
        full_env.update(env or {})
        variables = {"test_dir": str(tmp_path), "repo_dir": str(REPO)}
        variables.update(extra_vars or {})
        path = Path(playbook)
        if not path.is_absolute():
            path = TARGETS / path
        cmd = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(REPO / "inventory" / "localhost.yml"),
            str(path),
            "-e",
            json.dumps(variables),
            *args,
        ]
        if isinstance(identity, str):
            environment = variables.get("flora_environment", "prod")
            made = identities.production_identities(endpoint, environment, **identities.settings_of(variables))
            identity = getattr(made, identity)
        if identity is not None:
            full_env.update(identity.environment())
        with identities.enforcing(endpoint) if identity is not None else nullcontext():
            proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600, check=False)
        return PlaybookResult(proc)

    return run


@pytest.fixture
def run_playbook(aws, tmp_path):
    return playbook_runner(aws, tmp_path)
