"""The execution environment of execution-environment.yml, built here (tests/support/ee.py) and running the
collection's playbooks as AWX runs a job: ansible-runner's worker inside the image, with the collections the image
holds and nothing of the checkout, against a fresh test host, the moto server and the local stand-in for
CloudFront. The outcomes are the host tests': the release live, the frontend published and loaded in Chromium,
changed=0 on a second run."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.hosts.conftest import host_in_place_of_the_test_host
from tests.support import cdn, ee, localaws, stack

EE_HOST = "flora-ee"
BUCKET = "flora-frontend-ee"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return ee.build(tmp_path_factory.mktemp("ee-build"))


def ledger(host: str) -> dict:
    return json.loads(stack.host_exec(host, "cat", "/home/ubuntu/Flora/releases.json"))


def health_message(host: str) -> str:
    return json.loads(stack.host_exec(host, "curl", "-sf", "http://127.0.0.1:3001/api/health"))["message"]


def test_the_playbooks_run_in_the_execution_environment_as_awx_runs_them(image, host_services, tmp_path):
    commits = host_services["commits"]
    checkout = tmp_path / "Flora"
    subprocess.run(["git", "clone", "-q", "-b", "v2", str(host_services["origin"]), str(checkout)], check=True)
    distribution_id = localaws.create_site(host_services["endpoint"], BUCKET, comment="flora frontend (ee test)")
    stack.allow(host_services, frontend_bucket=BUCKET, distribution_id=distribution_id)
    with (
        host_in_place_of_the_test_host(host_services, EE_HOST, tmp_path) as services,
        cdn.local_cdn(services["endpoint"], BUCKET) as site_url,
    ):
        booted = ee.run(services, "flora.deploy.bootstrap_ec2", tmp_path, "bootstrap")
        assert booted.rc == 0, booted
        assert ledger(EE_HOST)["current"] == commits["main"]
        # A first bootstrap of a new host: root's and the app user's directories for Ansible's temporary files are
        # made before any module needs one, so no module warns that it had to create its own.
        for user in ("root's", "the app user's"):
            assert booted.result(f"Create {user} directory for Ansible's temporary files", EE_HOST)["changed"], user
        assert booted.warnings(EE_HOST) == []

        redeployed = ee.run(
            services, "flora.deploy.redeploy_backend", tmp_path, "redeploy", {"backend_redeploy_ref": "v2"}
        )
        assert redeployed.rc == 0, redeployed
        assert ledger(EE_HOST)["current"] == commits["v2"]
        assert health_message(EE_HOST) == "Flora backend v2 is running"
        again = ee.run(
            services, "flora.deploy.redeploy_backend", tmp_path, "redeploy-again", {"backend_redeploy_ref": "v2"}
        )
        assert again.rc == 0 and again.changed(EE_HOST) == 0, again

        site = {
            "frontend_publish_app_dir": "/runner/project/Flora",
            "frontend_publish_bucket": BUCKET,
            "frontend_publish_distribution_id": distribution_id,
            "frontend_publish_site_url": site_url,
            "frontend_publish_site_smoke_required": True,
        }
        published = ee.run(services, "flora.deploy.publish_frontend", tmp_path, "publish", site, {"Flora": checkout})
        assert published.rc == 0, published
        # Built with the image's Node and pnpm, and loaded in its Chromium.
        assert published.result("Load the site in a browser", "localhost")["failures"] == []
        republished = ee.run(
            services, "flora.deploy.publish_frontend", tmp_path, "publish-again", site, {"Flora": checkout}
        )
        assert republished.rc == 0 and republished.changed("localhost") == 0, republished

        # The checkout's commit runs on both sides already: deploy.yml has nothing to do.
        deploy = dict(site, deploy_app_dir="/runner/project/Flora")
        deployed = ee.run(services, "flora.deploy.deploy", tmp_path, "deploy", deploy, {"Flora": checkout})
        assert deployed.rc == 0, deployed
        assert deployed.changed("localhost") == 0 and deployed.changed(EE_HOST) == 0, deployed
