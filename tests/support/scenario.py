"""Run a molecule scenario on its own, with what it needs started first:

    make molecule SCENARIO=bootstrap                (molecule test -s bootstrap)
    make molecule SCENARIO=frontend ARGS=converge   (molecule converge -s frontend)
    .venv/bin/python -m tests.support.scenario bootstrap converge

bootstrap needs the test host image, the moto server with the Flora parameters, PostgreSQL, the fixture app over
git:// and the CloudWatch agent stand-in (tests/support/stack.py); frontend needs the moto server with a site
bucket and a distribution. Either runs as the collection's identities would in production, the moto server
authorizing every request (tests/support/identities.py): the frontend's publish as the deployer. Everything started
here stops when molecule returns; its exit code is this command's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import COLLECTIONS, REPO, ensure_collection_link
from tests.support import identities, localaws, stack

MOLECULE = Path(sys.executable).parent / "molecule"
BOOTSTRAP_HOST = "flora-bootstrap"  # the platform name in molecule/bootstrap/molecule.yml
FRONTEND_BUCKET = "flora-frontend-molecule"


@contextmanager
def services(scenario: str, work: Path) -> Iterator[dict]:
    """The environment ``molecule <command> -s <scenario>`` runs with, while what it reaches is up."""
    ensure_collection_link()
    if scenario == "bootstrap":
        stack.build_test_host_image()
        with stack.local_stack(work, BOOTSTRAP_HOST) as started:
            yield started["env"]
    elif scenario == "frontend":
        with localaws.moto_server(work / "moto.log", authorizing=True) as endpoint:
            distribution_id = localaws.create_site(endpoint, FRONTEND_BUCKET, comment="flora frontend (molecule)")
            site = {"frontend_bucket": FRONTEND_BUCKET, "distribution_id": distribution_id}
            with identities.in_production(endpoint, **site) as roles:
                env = dict(os.environ)
                env.pop("ANSIBLE_CONFIG", None)
                env.update(localaws.aws_environment(endpoint))
                env.update(roles.deployer.environment())
                env.update(
                    {
                        "PATH": f"{MOLECULE.parent}{os.pathsep}{env.get('PATH', '')}",
                        "FLORA_COLLECTIONS_PATH": str(COLLECTIONS),
                        "FLORA_FRONTEND_ENDPOINT": endpoint,
                        "FLORA_FRONTEND_BUCKET": FRONTEND_BUCKET,
                        "FLORA_FRONTEND_DISTRIBUTION_ID": distribution_id,
                        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
                    }
                )
                yield env
    else:
        scenarios = sorted(path.parent.name for path in (REPO / "molecule").glob("*/molecule.yml"))
        raise SystemExit(f"unknown scenario {scenario!r}: one of {', '.join(scenarios)}")


def run(scenario: str, command: list[str], env_extra: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``molecule <command> -s <scenario>`` with its services up (``kwargs`` go to subprocess.run)."""
    with (
        tempfile.TemporaryDirectory(prefix=f"flora-molecule-{scenario}-") as work,
        services(scenario, Path(work)) as env,
    ):
        env.update(env_extra or {})
        verb, *rest = command or ["test"]
        return subprocess.run([str(MOLECULE), verb, "-s", scenario, *rest], cwd=REPO, env=env, check=False, **kwargs)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    return run(argv[0], argv[1:]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
