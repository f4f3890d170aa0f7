"""playbooks/deploy.yml on the bootstrapped test host and a frontend bucket on the moto server.

The controller's app checkout is a clone of the hosts' origin; each test pushes a commit that changes one side
and checks that deploy.yml deploys that side only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.hosts.conftest import HOST
from tests.support import identities, localaws, stack
from tests.support.stack import playbook

BUCKET = "flora-frontend-deploy"
HEALTH = "http://127.0.0.1:3001/api/health"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def ledger_current() -> str:
    return json.loads(stack.host_exec(HOST, "cat", "/home/ubuntu/Flora/releases.json"))["current"]


def health_message() -> str:
    return json.loads(stack.host_exec(HOST, "curl", "-sf", HEALTH))["message"]


def recap(output: str, host: str) -> dict[str, int]:
    line = re.search(rf"^{re.escape(host)}\s*:(.*)$", output, re.MULTILINE).group(1)
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def plan_line(output: str) -> str:
    return re.search(r'"Deploy [0-9a-f]{40}: ([^"]+)"', output).group(1)


@pytest.fixture(scope="module")
def site(bootstrapped_host, tmp_path_factory):
    """The controller's checkout on a branch at the live backend commit, and an empty site bucket."""
    endpoint = bootstrapped_host["endpoint"]
    distribution_id = localaws.create_site(endpoint, BUCKET, comment="flora frontend (deploy test)")
    stack.allow(bootstrapped_host, frontend_bucket=BUCKET, distribution_id=distribution_id)
    checkout = tmp_path_factory.mktemp("deploy") / "Flora"
    subprocess.run(["git", "clone", "-q", str(bootstrapped_host["origin"]), str(checkout)], check=True)
    live = ledger_current()
    git(checkout, "checkout", "-q", "-b", "deploy-test", live)
    git(checkout, "push", "-q", "origin", "deploy-test")
    yield {"stack": bootstrapped_host, "checkout": checkout, "distribution_id": distribution_id}
    # Leave the host as the other tests expect it: the release that was live before.
    restored = playbook(bootstrapped_host, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={live}")
    assert restored.returncode == 0, restored.stdout[-4000:]


def deploy(site: dict, *extra: str) -> subprocess.CompletedProcess:
    variables = {
        "deploy_app_dir": str(site["checkout"]),
        "frontend_publish_bucket": BUCKET,
        "frontend_publish_distribution_id": site["distribution_id"],
    }
    result = playbook(site["stack"], "deploy.yml", "-e", json.dumps(variables), *extra)
    assert result.returncode == 0, result.stdout[-6000:]
    return result


def converged(site: dict) -> None:
    """The state a test starts from: the site and the backend at the checkout's commit (a deploy that may find
    nothing to do), so that the test runs alone as in the suite."""
    deploy(site)


def push(site: dict, message: str, path: str, pattern: str, replacement: str) -> str:
    checkout = site["checkout"]
    target = checkout / path
    text, count = re.subn(pattern, replacement, target.read_text())
    assert count > 0
    target.write_text(text)
    git(checkout, "-c", "user.name=Flora", "-c", "user.email=flora@example.com", "commit", "-q", "-am", message)
    git(checkout, "push", "-q", "origin", "deploy-test")
    return git(checkout, "rev-parse", "HEAD")


def manifest_keys(site: dict) -> list[str]:
    s3 = localaws.boto3_client("s3", site["stack"]["endpoint"])
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=".publish/manifests/").get("Contents", [])
    return sorted(item["Key"] for item in listed)


def published_source(site: dict) -> dict:
    s3 = localaws.boto3_client("s3", site["stack"]["endpoint"])
    body = s3.get_object(Bucket=BUCKET, Key=manifest_keys(site)[-1])["Body"].read()
    return json.loads(body)["source"]


def test_a_site_never_published_gets_the_frontend_and_the_backend_is_left_alone(site):
    live = ledger_current()
    result = deploy(site)
    assert plan_line(result.stdout) == "frontend build and publish"
    assert "no frontend commit is live" in result.stdout
    assert ledger_current() == live
    assert published_source(site)["commit"] == live
    assert recap(result.stdout, "localhost")["changed"] > 0
    assert recap(result.stdout, HOST)["changed"] == 0


def test_a_second_run_plans_nothing_and_changes_nothing(site):
    converged(site)
    result = deploy(site)
    assert plan_line(result.stdout) == "nothing to deploy"
    assert recap(result.stdout, "localhost")["changed"] == 0
    assert recap(result.stdout, HOST)["changed"] == 0


def test_a_frontend_change_publishes_the_frontend_only(site):
    converged(site)
    live, manifests_before = ledger_current(), manifest_keys(site)
    target = push(site, "New shop title", "apps/frontend/src/App.jsx", r"\bFlora\b", "Flora Marketplace")

    checked = deploy(site, "--check")
    assert plan_line(checked.stdout) == "frontend build and publish"
    assert "M apps/frontend/src/App.jsx (frontend, rule apps/frontend/**)" in checked.stdout
    assert manifest_keys(site) == manifests_before

    result = deploy(site)
    assert plan_line(result.stdout) == "frontend build and publish"
    assert published_source(site)["commit"] == target
    assert len(manifest_keys(site)) == len(manifests_before) + 1
    assert ledger_current() == live
    assert recap(result.stdout, HOST)["changed"] == 0


def test_a_backend_change_redeploys_the_backend_only(site):
    converged(site)
    manifests_before = manifest_keys(site)
    target = push(
        site,
        "New health message",
        "apps/backend/src/index.ts",
        r'RELEASE_MESSAGE = "[^"]*"',
        'RELEASE_MESSAGE = "Flora backend (deploy test) is running"',
    )
    result = deploy(site)
    assert plan_line(result.stdout) == "backend release"
    assert ledger_current() == target
    assert health_message() == "Flora backend (deploy test) is running"
    assert manifest_keys(site) == manifests_before
    assert recap(result.stdout, "localhost")["changed"] == 0


def test_a_secret_change_alone_plans_a_backend_refresh(site):
    converged(site)
    ssm = localaws.boto3_client("ssm", site["stack"]["endpoint"])
    name = f"{localaws.FLORA_PREFIX}/gmail_password"
    before = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value="a-new-app-password", Type="SecureString", Overwrite=True)
    try:
        result = deploy(site, "--check")
        assert plan_line(result.stdout) == "backend env refresh and reload (no build)"
        assert re.search(r"env values changed: [A-Z_, ]*\bSMTP_PASS\b", result.stdout)
        assert "a-new-app-password" not in result.stdout
    finally:
        ssm.put_parameter(Name=name, Value=before, Type="SecureString", Overwrite=True)


def test_through_ansible_runner_no_secret_reaches_the_job_events_or_artifacts(site, tmp_path):
    """deploy.yml as AWX runs it: ansible-runner with a private data directory, the AWS credential injected as
    environment variables, extra variables from env/extravars, at -vvv with --diff, while a rotated secret
    makes the backend re-render its env file."""
    converged(site)
    services = site["stack"]
    private = tmp_path / "runner"
    (private / "env").mkdir(parents=True)
    (private / "project").symlink_to(REPO)
    shutil.copytree(services["inventory"], private / "inventory")
    # The hosts get keys from their group's variables here (an IAM user's, with the instance role's policy), in
    # place of the instance role; they must not leak either. The controller has the deployer's, as AWX injects.
    hosts_user = identities.create_user(
        services["endpoint"], "flora-prod-backend-keys", ["flora-prod-backend-instance"]
    )
    host_secret = hosts_user.secret_access_key
    keys = {"flora_aws_access_key": hosts_user.access_key_id, "flora_aws_secret_key": host_secret}
    (private / "inventory" / "group_vars" / "flora_backend.yml").write_text(yaml.safe_dump(keys))
    deployer = services["identities"].deployer
    aws_secret = deployer.secret_access_key
    envvars = {
        "AWS_ACCESS_KEY_ID": deployer.access_key_id,
        "AWS_SECRET_ACCESS_KEY": aws_secret,
        "AWS_SECURITY_TOKEN": "",
        "AWS_DEFAULT_REGION": localaws.REGION,
        "PATH": services["env"]["PATH"],
        "ANSIBLE_NOCOLOR": "1",
    }
    (private / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    (private / "env" / "extravars").write_text(
        yaml.safe_dump(
            {
                "deploy_app_dir": str(site["checkout"]),
                "frontend_publish_bucket": BUCKET,
                "frontend_publish_distribution_id": site["distribution_id"],
            }
        )
    )
    ssm = localaws.boto3_client("ssm", services["endpoint"])
    name = f"{localaws.FLORA_PREFIX}/stripe_secret_key"
    before = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    rotated = "sk_live_RotatedRunnerSecret42"
    ssm.put_parameter(Name=name, Value=rotated, Type="SecureString", Overwrite=True)
    env = {key: value for key, value in services["env"].items() if not key.startswith("AWS_")}
    try:
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-runner"),
                "run",
                str(private),
                "--playbook",
                "playbooks/deploy.yml",
                "--ident",
                "deploy-1",
                "-vvv",
                "--cmdline=--diff",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        ssm.put_parameter(Name=name, Value=before, Type="SecureString", Overwrite=True)
    artifacts = private / "artifacts" / "deploy-1"
    assert (artifacts / "stdout").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    stdout = (artifacts / "stdout").read_text()
    assert (artifacts / "rc").read_text().strip() == "0", stdout[-6000:]
    assert proc.returncode == 0
    assert "backend env refresh and reload (no build)" in stdout
    assert re.search(r"env values changed: [A-Z_, ]*\bSTRIPE_SECRET_KEY\b", stdout)
    events = sorted((artifacts / "job_events").glob("*.json"))
    assert len(events) > 20

    secrets = localaws.secret_forms([*localaws.FLORA_SECURE_PARAMETERS.values(), rotated])
    for path in sorted(p for p in private.rglob("*") if p.is_file() and not p.is_symlink()):
        if (private / "project") in path.parents:
            continue
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret from Parameter Store is in {path.relative_to(private)}"
        relative = path.relative_to(private).as_posix()
        if aws_secret in text:
            # The input, and ansible-runner's own record of the environment it started ansible-playbook with.
            assert relative in {"env/envvars", "artifacts/deploy-1/command"}, relative
        if host_secret in text:
            assert relative == "inventory/group_vars/flora_backend.yml", relative
