"""The whole stack on one machine: the frontend bucket on the moto server and the backend on the test host behind
a local CDN stand-in (nginx), checked in headless Chromium by flora.deploy.site_smoke."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.hosts.conftest import HOST, wait_for_health
from tests.hosts.test_redeploy import ACTIVATE
from tests.support import cdn, localaws, stack
from tests.support.stack import PlaybookRun

BUCKET = "flora-frontend-site"
SAMPLE = REPO / "tests" / "fixtures" / "sample-build"
CHECK = REPO / "tests" / "integration" / "targets" / "site_smoke" / "check.yml"


def run_playbook(services: dict, path: Path, variables: dict, *extra: str, reported: bool = False):
    """ansible-playbook ``path`` against the stack; with ``reported``, each task's result on each host
    (ansible.posix.json), read with stack.PlaybookRun."""
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(services["inventory"] / "hosts.yml"),
        str(path),
        "-e",
        json.dumps(variables),
        *extra,
    ]
    env = dict(services["env"], ANSIBLE_STDOUT_CALLBACK="ansible.posix.json") if reported else services["env"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def site(bootstrapped_host, tmp_path_factory):
    services = bootstrapped_host
    endpoint = services["endpoint"]
    distribution_id = localaws.create_site(endpoint, BUCKET, comment="flora frontend (site test)")
    stack.allow(services, frontend_bucket=BUCKET, distribution_id=distribution_id)
    work = tmp_path_factory.mktemp("site")
    build = work / "dist"
    shutil.copytree(SAMPLE, build)
    with cdn.local_cdn(endpoint, BUCKET) as url:
        yield {"services": services, "url": url, "build": build, "distribution_id": distribution_id, "work": work}


def site_variables(site: dict, **extra) -> dict:
    return {
        "frontend_publish_bucket": BUCKET,
        "frontend_publish_distribution_id": site["distribution_id"],
        "frontend_publish_site_url": site["url"],
        "frontend_publish_site_smoke_deep_links": ["/order-confirmation/123"],
        "frontend_publish_smoke_retries": 2,
        "frontend_publish_smoke_delay": 1,
        **extra,
    }


def publish(site: dict, build: Path, reported: bool = False, **extra) -> subprocess.CompletedProcess:
    variables = site_variables(site, frontend_publish_build=False, frontend_publish_build_dir=str(build), **extra)
    return run_playbook(site["services"], REPO / "playbooks" / "publish_frontend.yml", variables, reported=reported)


def loaded_in_a_browser(run: PlaybookRun) -> dict:
    """The publish role's browser check in ``run``, after checking that it ran and met no failure."""
    loaded = run.result("Load the site in a browser")
    assert loaded.get("skipped") is not True and loaded["failures"] == [], run
    return loaded


def published(site: dict) -> None:
    """The state a test starts from: the sample build live on the site (a publish with nothing to do when it is
    already), so that the test runs alone as in the suite."""
    result = publish(site, site["build"])
    assert result.returncode == 0, result.stdout[-4000:]


def smoke(site: dict, url: str | None = None, **args) -> dict:
    smoke_args = {"url": url or site["url"], "build_dir": str(site["build"]), "required": True, **args}
    result_dir = site["work"]
    run = run_playbook(site["services"], CHECK, {"smoke_args": smoke_args, "test_dir": str(result_dir)})
    assert run.returncode == 0, run.stdout[-4000:]
    return json.loads((result_dir / "result.json").read_text())


def test_publish_ends_with_the_site_loading_in_a_browser_with_the_api_through_the_same_origin(site):
    run = PlaybookRun(publish(site, site["build"], reported=True), "localhost")
    assert run.rc == 0, run
    assert loaded_in_a_browser(run)["pages"]
    seen = smoke(site, deep_links=["/order-confirmation/123"])
    assert seen.get("failed") is not True, seen.get("msg")
    assert seen["failures"] == []
    home, deep = seen["pages"]
    statuses = {request["url"].replace(site["url"], ""): request.get("status") for request in home["requests"]}
    assert statuses["/"] == 200
    assert statuses["/assets/index-3TWYBq9S.js"] == 200
    assert statuses["/api/health"] == 200
    assert home["document_sha256"] == deep["document_sha256"]
    assert seen["browser"].startswith("Chrome/")


def test_a_stopped_backend_is_caught(site):
    published(site)
    stack.host_exec(HOST, "systemctl", "stop", "pm2-ubuntu")
    try:
        seen = smoke(site)
    finally:
        stack.host_exec(HOST, "systemctl", "start", "pm2-ubuntu")
        assert wait_for_health() == 200
    assert seen["failed"] is True
    assert any("/api/health answered 502" in failure for failure in seen["failures"]), seen["failures"]
    assert any("from the page answered 502; expected 200" in failure for failure in seen["failures"])
    assert Path(seen["pages"][0]["screenshot"]).read_bytes().startswith(b"\x89PNG")


def test_a_deep_link_without_the_spa_fallback_is_caught(site):
    published(site)
    with cdn.local_cdn(site["services"]["endpoint"], BUCKET, spa_fallback=False) as url:
        seen = smoke(site, url=url, deep_links=["/order-confirmation/123"])
    assert seen["failed"] is True
    deep = seen["pages"][1]
    assert f"GET {url}/order-confirmation/123 answered 404" in deep["failures"]
    assert any("not the index.html just published" in failure for failure in deep["failures"])
    assert seen["pages"][0]["failures"] == []


def test_an_asset_missing_from_the_bucket_is_caught(site):
    published(site)
    s3 = localaws.boto3_client("s3", site["services"]["endpoint"])
    key = "assets/index-B7hC2kQe.css"
    body = s3.get_object(Bucket=BUCKET, Key=key)
    content, headers = body["Body"].read(), {"ContentType": body["ContentType"], "CacheControl": body["CacheControl"]}
    s3.delete_object(Bucket=BUCKET, Key=key)
    try:
        seen = smoke(site)
    finally:
        s3.put_object(Bucket=BUCKET, Key=key, Body=content, **headers)
    assert seen["failed"] is True
    # Like CloudFront's custom error response, the stand-in answers index.html for it: the browser refuses it.
    assert any("index-B7hC2kQe.css" in failure for failure in seen["failures"]), seen["failures"]


def test_a_page_that_throws_fails_the_publish(site):
    broken = site["work"] / "broken-dist"
    shutil.copytree(SAMPLE, broken)
    index = broken / "index.html"
    index.write_text(
        index.read_text().replace("</body>", '<script>throw new Error("flora smoke boom")</script></body>')
    )
    result = publish(site, broken)
    assert result.returncode != 0
    assert "Uncaught exception: Error: flora smoke boom" in result.stdout
    warned = publish(site, broken, frontend_publish_site_smoke="warn")
    assert warned.returncode == 0, warned.stdout[-4000:]
    assert "WARNING: The site smoke test failed" in warned.stdout
    restored = publish(site, site["build"])
    assert restored.returncode == 0, restored.stdout[-4000:]


def test_deploy_ends_with_the_browser_check_after_a_backend_only_deploy(site, tmp_path):
    services = site["services"]
    live = json.loads(stack.host_exec(HOST, "cat", "/home/ubuntu/Flora/releases.json"))["current"]
    checkout = tmp_path / "Flora"
    subprocess.run(["git", "clone", "-q", str(services["origin"]), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", live], check=True)
    variables = {
        "deploy_app_dir": str(checkout),
        "frontend_publish_bucket": BUCKET,
        "frontend_publish_distribution_id": site["distribution_id"],
        "frontend_publish_site_url": site["url"],
    }
    # A deploy of the live commit: the site serves a build of it, with the build-time env Parameter Store gives
    # now. Only a rotated backend secret is left to deploy.
    first = PlaybookRun(
        run_playbook(services, REPO / "playbooks" / "deploy.yml", variables, reported=True), "localhost"
    )
    assert first.rc == 0, first
    ssm = localaws.boto3_client("ssm", services["endpoint"])
    name = f"{localaws.FLORA_PREFIX}/gemini_api_key"
    before = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value="AIzaRotatedForTheSiteTest", Type="SecureString", Overwrite=True)
    try:
        result = run_playbook(services, REPO / "playbooks" / "deploy.yml", variables, reported=True)
    finally:
        ssm.put_parameter(Name=name, Value=before, Type="SecureString", Overwrite=True)
        resynced = run_playbook(services, REPO / "playbooks" / "redeploy_backend.yml", {"backend_redeploy_ref": live})
        assert resynced.returncode == 0, resynced.stdout[-4000:]
    controller, backend = PlaybookRun(result, "localhost"), PlaybookRun(result, HOST)
    assert result.returncode == 0, controller
    plan = controller.result("Decide what the checkout's commit needs")
    assert (plan["backend"]["action"], plan["frontend"]["action"]) == ("refresh", "none"), plan
    assert "backend env refresh and reload (no build)" in plan["summary"]
    # The backend reloaded its live release for the new secret, then the site was loaded in the browser.
    reloaded = backend.result(ACTIVATE)
    assert reloaded["changed"] and reloaded["workers"], reloaded
    loaded_in_a_browser(controller)
    assert controller.warnings() + backend.warnings() == []


def test_a_rollback_puts_the_previous_build_back_through_the_browser_check(site):
    assert publish(site, site["build"]).returncode == 0
    second = site["work"] / "second-dist"
    shutil.copytree(SAMPLE, second)
    index = second / "index.html"
    index.write_text(index.read_text().replace("</body>", "<p>the second build</p></body>"))
    published = publish(site, second)
    assert published.returncode == 0, published.stdout[-4000:]
    with urllib.request.urlopen(f"{site['url']}/index.html", timeout=10) as response:
        assert b"the second build" in response.read()

    rolled = PlaybookRun(
        run_playbook(
            site["services"], REPO / "playbooks" / "rollback_frontend.yml", site_variables(site), reported=True
        ),
        "localhost",
    )
    assert rolled.rc == 0, rolled
    loaded_in_a_browser(rolled)
    original = (site["build"] / "index.html").read_bytes()
    with urllib.request.urlopen(f"{site['url']}/index.html", timeout=10) as response:
        assert response.read() == original
    seen = smoke(site, deep_links=["/order-confirmation/123"])
    assert seen["failures"] == []
    assert {page["document_sha256"] for page in seen["pages"]} == {hashlib.sha256(original).hexdigest()}
