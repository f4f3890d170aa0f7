"""playbooks/deploy.yml on the controller alone (no backend hosts): the app cloned by app_checkout, as AWX jobs
do, the frontend planned from its publish manifest, published once, then left alone; run as the deployer (CI or
AWX), with the policy the collection renders for the bucket and the distribution."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import REPO
from tests.support import localaws

FIXTURE_APP = REPO / "tests" / "fixtures" / "flora-app"
PLAYBOOK = REPO / "playbooks" / "deploy.yml"
BUCKET = "flora-frontend-plan"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Flora", "-c", "user.email=flora@example.com", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def plan_line(output: str) -> str:
    return re.search(r'"Deploy [0-9a-f]{40}: ([^"]+)"', output).group(1)


def localhost_changed(output: str) -> int:
    return int(re.search(r"^localhost\s*:.*changed=(\d+)", output, re.MULTILINE).group(1))


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    shutil.copytree(FIXTURE_APP, repo, ignore=shutil.ignore_patterns("node_modules", "dist", ".env"))
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "Flora fixture app")
    return repo


def manifests(endpoint: str) -> list[dict]:
    s3 = localaws.boto3_client("s3", endpoint)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=".publish/manifests/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]


def test_deploy_clones_the_app_publishes_the_frontend_once_and_then_does_nothing(run_playbook, aws, app_repo, tmp_path):
    distribution_id = localaws.create_site(aws, BUCKET)
    # The build-time env file is rendered from the environment's parameters, for the distribution's URL.
    localaws.seed_flora_parameters(aws)
    variables = {
        "app_checkout_repo_url": f"file://{app_repo}",
        "app_checkout_dest": str(tmp_path / "checkout"),
        "frontend_publish_bucket": BUCKET,
        "frontend_publish_distribution_id": distribution_id,
        "flora_aws_endpoint_url": aws,
    }
    first = run_playbook(str(PLAYBOOK), variables, identity="deployer")
    assert first.rc == 0, first
    assert plan_line(first.output) == "frontend build and publish"
    assert "no frontend commit is live" in first.output
    head = git(app_repo, "rev-parse", "HEAD")
    assert [m["source"]["commit"] for m in manifests(aws)] == [head]
    assert [len(m["source"]["env_checksum"]) for m in manifests(aws)] == [64]

    second = run_playbook(str(PLAYBOOK), variables, identity="deployer")
    assert second.rc == 0, second
    assert plan_line(second.output) == "nothing to deploy"
    assert localhost_changed(second.output) == 0

    page = app_repo / "apps" / "frontend" / "src" / "App.jsx"
    page.write_text(page.read_text().replace("Marketplace", "Flower Market"))
    target = commit_all(app_repo, "Rename the shop")
    checked = run_playbook(str(PLAYBOOK), {**variables, "app_checkout_ref": target}, "--check", identity="deployer")
    assert checked.rc == 0, checked
    assert plan_line(checked.output) == "frontend build and publish"
    assert "M apps/frontend/src/App.jsx" in checked.output
    assert len(manifests(aws)) == 1


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"frontend_publish_bucket": BUCKET}, "Set deploy_app_dir to an app checkout"),
        ({"deploy_app_dir": "/srv/Flora"}, "Set frontend_publish_bucket"),
    ],
)
def test_missing_settings_are_named(run_playbook, variables, message):
    result = run_playbook(str(PLAYBOOK), variables)
    assert result.rc != 0
    assert message in result.output
