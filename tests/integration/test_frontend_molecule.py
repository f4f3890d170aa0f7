"""molecule/frontend: the frontend publish on the controller (default driver) against the moto server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import COLLECTIONS, REPO, ensure_collection_link
from tests.integration.test_frontend_publish import create_public_site, invalidations, site_objects
from tests.support import localaws

BUCKET = "flora-frontend-molecule"
SAMPLE_BUILD = REPO / "tests" / "fixtures" / "sample-build"


def test_molecule_frontend_scenario(aws, tmp_path):
    ensure_collection_link()
    distribution_id = create_public_site(aws, BUCKET)
    venv_bin = Path(sys.executable).parent
    env = dict(os.environ)
    env.update(localaws.aws_environment(aws))
    env.update(
        {
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            "FLORA_COLLECTIONS_PATH": str(COLLECTIONS),
            "FLORA_FRONTEND_ENDPOINT": aws,
            "FLORA_FRONTEND_BUCKET": BUCKET,
            "FLORA_FRONTEND_DISTRIBUTION_ID": distribution_id,
            "ANSIBLE_NOCOLOR": "1",
            "NO_COLOR": "1",
            "PY_COLORS": "0",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        }
    )
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run(
        [str(venv_bin / "molecule"), "test", "-s", "frontend"],
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
    s3 = localaws.boto3_client("s3", aws)
    expected = {path.relative_to(SAMPLE_BUILD).as_posix() for path in SAMPLE_BUILD.rglob("*") if path.is_file()}
    assert set(site_objects(s3, BUCKET)) == expected
    assert invalidations(aws, distribution_id) == [["/flora-logo.png", "/images/Roses.jpg", "/index.html"]]
