"""publish_frontend.yml through ansible-runner, as AWX runs it: a private data directory with the project, an
inventory, env/extravars, and the AWS credential injected as environment variables (env/envvars): the deployer's
access key, with the policy the collection renders for the bucket and the distribution, while the local AWS
authorizes every request."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.conftest import REPO
from tests.support import identities, localaws

BUCKET = "flora-frontend-runner"


def test_publish_through_ansible_runner_keeps_the_aws_credential_out_of_events_and_output(aws, tmp_path):
    distribution_id = localaws.create_site(aws, BUCKET)
    build = tmp_path / "dist"
    shutil.copytree(REPO / "tests" / "fixtures" / "sample-build", build)

    private = tmp_path / "runner"
    (private / "env").mkdir(parents=True)
    (private / "inventory").mkdir()
    (private / "project").symlink_to(REPO)
    shutil.copy(REPO / "inventory" / "localhost.yml", private / "inventory" / "hosts.yml")
    # AWX's AWS credential for the job: the deployer's access key.
    deployer = identities.production_identities(
        aws, "prod", frontend_bucket=BUCKET, distribution_id=distribution_id
    ).deployer
    secret_key = deployer.secret_access_key
    # As AWX's AWS credential injects them; the endpoint is the local AWS.
    envvars = {
        "AWS_ACCESS_KEY_ID": deployer.access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_SECURITY_TOKEN": "",
        "AWS_ENDPOINT_URL": aws,
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "ANSIBLE_NOCOLOR": "1",
    }
    (private / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    extravars = {
        "frontend_publish_build": False,
        "frontend_publish_build_dir": str(build),
        "frontend_publish_bucket": BUCKET,
        "frontend_publish_distribution_id": distribution_id,
        "flora_aws_endpoint_url": aws,
        "frontend_publish_smoke_retries": 1,
        "frontend_publish_smoke_delay": 0,
    }
    (private / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    env = {"PATH": envvars["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    with identities.enforcing(aws):
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-runner"),
                "run",
                str(private),
                "--playbook",
                "playbooks/publish_frontend.yml",
                "--ident",
                "publish-1",
                "-vvv",
                "--cmdline=--diff",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    artifacts = private / "artifacts" / "publish-1"
    assert (artifacts / "stdout").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    stdout = (artifacts / "stdout").read_text()
    assert (artifacts / "rc").read_text().strip() == "0", stdout[-6000:]
    s3 = localaws.boto3_client("s3", aws)
    assert s3.head_object(Bucket=BUCKET, Key="index.html")["CacheControl"] == "public,max-age=60"

    events = [json.loads(path.read_text()) for path in sorted((artifacts / "job_events").glob("*.json"))]
    assert any(event.get("event") == "playbook_on_stats" for event in events)
    # The search below would see the key: ansible-runner keeps it in its record of the environment.
    assert secret_key in (artifacts / "command").read_text()
    for path in sorted(p for p in private.rglob("*") if p.is_file() and not p.is_symlink()):
        if secret_key in path.read_text(errors="replace"):
            # The input, and ansible-runner's own record of the environment it started ansible-playbook with.
            assert path.relative_to(private).as_posix() in {"env/envvars", "artifacts/publish-1/command"}, path
