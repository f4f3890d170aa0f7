"""ansible-galaxy collection build gives a tarball that installs and documents its modules and roles."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def test_built_collection_installs_and_documents_itself(tmp_path):
    build = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    tarball = tmp_path / "flora-deploy-0.1.0.tar.gz"
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/modules/ssm_env.py" in names
    assert "roles/backend_redeploy/tasks/main.yml" in names
    assert "playbooks/redeploy_backend.yml" in names
    assert not [name for name in names if "node_modules" in name or name.startswith((".venv", ".cache"))]

    target = tmp_path / "collections"
    # Away from the checkout's ansible.cfg, as a user of the tarball would be.
    env = {"ANSIBLE_COLLECTIONS_PATH": str(target), "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    install = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "-p",
            str(target),
            str(tarball),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    for kind, name in (("module", "flora.deploy.s3_publish"), ("role", "flora.deploy.ec2_bootstrap")):
        doc = subprocess.run(
            [str(BIN / "ansible-doc"), "-t", kind, name],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert doc.returncode == 0, doc.stderr
        assert "flora.deploy" in doc.stdout or "ec2_bootstrap" in doc.stdout
