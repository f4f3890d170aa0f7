"""molecule/frontend run as `make molecule SCENARIO=frontend` runs it: the frontend publish on the controller
(default driver) as the deployer (CI or AWX), against the moto server the scenario runner starts, which authorizes
every request against the policy the collection renders for the scenario's bucket and distribution."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO
from tests.integration.test_frontend_publish import invalidations, site_objects
from tests.support import localaws, scenario

SAMPLE_BUILD = REPO / "tests" / "fixtures" / "sample-build"


def test_molecule_frontend_scenario(tmp_path):
    with scenario.services("frontend", tmp_path) as env:
        env.update({"ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1", "PY_COLORS": "0"})
        proc = subprocess.run(
            [str(scenario.MOLECULE), "test", "-s", "frontend"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-6000:]
        for action in ("converge", "idempotence", "verify"):
            assert f"frontend > {action}: Executed: Successful" in output, output[-6000:]

        # converge published the sample build; the idempotence run uploaded and invalidated nothing more.
        endpoint, bucket = env["FLORA_FRONTEND_ENDPOINT"], env["FLORA_FRONTEND_BUCKET"]
        s3 = localaws.boto3_client("s3", endpoint)
        expected = {path.relative_to(SAMPLE_BUILD).as_posix() for path in SAMPLE_BUILD.rglob("*") if path.is_file()}
        assert set(site_objects(s3, bucket)) == expected
        assert invalidations(endpoint, env["FLORA_FRONTEND_DISTRIBUTION_ID"]) == [
            ["/", "/flora-logo.png", "/images/Roses.jpg", "/index.html"]
        ]
