"""playbooks/rollback_frontend.yml (role flora.deploy.frontend_publish, action rollback) against moto.

Two builds of the fixture app are published, the second with a changed component and a changed unhashed image,
then the first is put back from what the bucket keeps, and the second again by its commit. Every run (publish,
rollback, and the read of what the site serves) is the deployer's (CI or AWX), with the policy the collection
renders for the bucket and the distribution.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path

from tests.integration.test_frontend_publish import (
    BUCKET,
    ENTRY,
    REVALIDATE,
    anonymous_status,
    body,
    change_component,
    changed_count,
    copy_app,
    create_private_site,
    invalidations,
    publish,
    referenced,
    site_objects,
    site_variables,
)
from tests.support import cdn, localaws, real_shaped

ROLLBACK = "frontend_publish/rollback.yml"
COMMIT_ONE = "1" * 40
COMMIT_TWO = "2" * 40


def latest_manifest(s3) -> dict:
    keys = sorted(
        item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=".publish/manifests/").get("Contents", [])
    )
    return json.loads(body(s3, keys[-1]))


def etags(s3) -> dict[str, str]:
    return {key: item["ETag"] for key, item in site_objects(s3).items()}


def roll_back(run_playbook, tmp_path: Path, variables: dict, *args: str) -> tuple[dict, str]:
    """The rollback playbook as the deployer; returns what the role registered and the output."""
    return publish(run_playbook, tmp_path, variables, *args, playbook=ROLLBACK)


def publish_two_builds(aws, run_playbook, tmp_path: Path) -> tuple[str, dict, dict[str, bytes], dict[str, bytes]]:
    """(distribution, site variables, the first build's files, the second's): the second changes a component
    (new chunk names, a new index.html) and the unhashed logo."""
    distribution_id = create_private_site(aws)
    localaws.seed_flora_parameters(aws)
    app = copy_app(tmp_path)
    variables = site_variables(aws, distribution_id, frontend_publish_app_dir=str(app))
    dist = app / "apps" / "frontend" / "dist"

    def files() -> dict[str, bytes]:
        return {str(path.relative_to(dist)): path.read_bytes() for path in dist.rglob("*") if path.is_file()}

    publish(run_playbook, tmp_path, {**variables, "frontend_publish_source": {"commit": COMMIT_ONE}})
    first = files()
    change_component(app, "Two")
    logo = app / "apps" / "frontend" / "public" / "flora-logo.png"
    logo.write_bytes(logo.read_bytes() + b" second edition")
    publish(run_playbook, tmp_path, {**variables, "frontend_publish_source": {"commit": COMMIT_TWO}})
    second = files()
    assert first["index.html"] != second["index.html"] and first["flora-logo.png"] != second["flora-logo.png"]
    rollback_variables = site_variables(aws, distribution_id)
    return distribution_id, rollback_variables, first, second


def test_rollback_puts_the_previous_build_back_and_a_commit_forward_again(aws, run_playbook, tmp_path):
    distribution_id, variables, first, second = publish_two_builds(aws, run_playbook, tmp_path)
    s3 = localaws.boto3_client("s3", aws)
    invalidated_before = len(invalidations(aws, distribution_id))

    # Check mode says what it would put back and changes nothing.
    before = etags(s3)
    planned, output = roll_back(run_playbook, tmp_path, variables, "--check")
    assert planned["publish"]["changed"] is True
    assert planned["publish"]["changed_keys"] == ["flora-logo.png", "index.html"]
    restored = f"{planned['publish']['restored_build_id']} (commit {COMMIT_ONE})"
    would = f"Would put {restored} back live in s3://{BUCKET}/, copying 2 files inside the bucket"
    assert planned["publish"]["msg"] == would
    assert f'"msg": "{would}"' in output
    assert etags(s3) == before
    assert latest_manifest(s3)["source"]["commit"] == COMMIT_TWO

    # The previous build is live again: its index.html and logo, put back with their headers; the second build's
    # chunks stay for browsers that hold its index.html.
    result, output = roll_back(run_playbook, tmp_path, variables)
    assert result["publish"]["changed_keys"] == ["flora-logo.png", "index.html"]
    said = f"Put {restored} back live in s3://{BUCKET}/: 2 files copied inside the bucket"
    assert result["publish"]["msg"] == said
    assert f'"msg": "{said}"' in output
    assert result["publish"]["source"]["commit"] == COMMIT_ONE
    assert body(s3, "index.html") == first["index.html"]
    assert body(s3, "flora-logo.png") == first["flora-logo.png"]
    for key, headers in {
        "index.html": (ENTRY, "text/html; charset=utf-8"),
        "flora-logo.png": (REVALIDATE, "image/png"),
    }.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["CacheControl"], head["ContentType"]) == headers, key
    assert set(referenced(second["index.html"])) <= set(site_objects(s3))
    manifest = latest_manifest(s3)
    assert manifest["source"] == result["publish"]["source"]
    assert manifest["restored_from"] == result["publish"]["restored_build_id"]
    # What changed under an old name is invalidated, / with the default root object.
    assert result["invalidation"]["paths"] == ["/", "/flora-logo.png", "/index.html"]
    assert len(invalidations(aws, distribution_id)) == invalidated_before + 1
    # Read back from the private bucket, signed: the restored index.html and everything it references.
    assert [item["path"] for item in result["verify"]["checked"]] == ["index.html"] + [
        item["path"] for item in result["build"]["referenced"]
    ]
    assert all(item["ok"] for item in result["verify"]["checked"])
    assert sorted(item["path"] for item in result["build"]["referenced"]) == sorted(referenced(first["index.html"]))
    assert anonymous_status(aws, "index.html") == 403
    assert changed_count(output) == 1  # the rollback, which invalidated too

    # playbooks/deploy.yml now reads the first build's commit as live.
    run = run_playbook(
        "frontend_publish/live.yml", {**variables, "frontend_publish_env_render": False}, identity="deployer"
    )
    assert run.rc == 0, run
    assert json.loads((tmp_path / "live.json").read_text())["commit"] == COMMIT_ONE

    # Nothing was kept before the build just put back: a second rollback stops, naming the builds, and changes nothing.
    before = etags(s3)
    run = run_playbook(ROLLBACK, variables, identity="deployer")
    assert run.rc != 0
    assert "keeps no build before the live one" in run.output
    assert "name one by its build ID or commit to put it back" in run.output
    assert f"commit {COMMIT_ONE}" in run.output
    assert etags(s3) == before

    # The second build by its commit: forward again, the logo from the copy the rollback kept aside.
    forward, output = roll_back(run_playbook, tmp_path, {**variables, "frontend_publish_rollback_to": COMMIT_TWO[:7]})
    assert forward["publish"]["changed_keys"] == ["flora-logo.png", "index.html"]
    assert body(s3, "index.html") == second["index.html"]
    assert body(s3, "flora-logo.png") == second["flora-logo.png"]
    assert latest_manifest(s3)["source"]["commit"] == COMMIT_TWO

    # Again: already live, changed=0.
    again, output = roll_back(run_playbook, tmp_path, {**variables, "frontend_publish_rollback_to": COMMIT_TWO})
    assert again["publish"]["changed"] is False
    assert (again["invalidation"]["changed"], again["invalidation"]["paths"]) == (False, [])
    assert changed_count(output) == 0, output


def test_rollback_to_a_build_the_bucket_no_longer_holds_changes_nothing(aws, run_playbook, tmp_path):
    variables = publish_two_builds(aws, run_playbook, tmp_path)[1]
    s3 = localaws.boto3_client("s3", aws)
    stored = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=".publish/objects/").get("Contents", [])]
    assert len(stored) == 2  # the first build's index.html and logo, copied aside before they were overwritten
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in stored]})
    before = etags(s3)

    run = run_playbook(ROLLBACK, variables, identity="deployer")
    assert run.rc != 0
    assert "no longer holds 2 of its files (flora-logo.png, index.html)" in run.output
    assert etags(s3) == before
    assert latest_manifest(s3)["source"]["commit"] == COMMIT_TWO

    # An unknown commit names the builds that are kept.
    run = run_playbook(ROLLBACK, {**variables, "frontend_publish_rollback_to": "abcdef0"}, identity="deployer")
    assert run.rc != 0
    assert f"No build of commit abcdef0 is kept in s3://{BUCKET}/" in run.output
    assert f"commit {COMMIT_TWO}" in run.output and f"commit {COMMIT_ONE}" in run.output


def test_copies_are_kept_while_a_kept_build_needs_them(aws, run_playbook, tmp_path):
    # keep_previous=1: each publish copies the index.html it overwrites aside, for the one build kept before it;
    # when that build ages out, so does its copy.
    distribution_id = create_private_site(aws)
    localaws.seed_flora_parameters(aws)
    app = copy_app(tmp_path)
    variables = site_variables(
        aws, distribution_id, frontend_publish_app_dir=str(app), frontend_publish_keep_previous=1
    )
    index = app / "apps" / "frontend" / "dist" / "index.html"
    s3 = localaws.boto3_client("s3", aws)

    def stored() -> set[str]:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=".publish/objects/").get("Contents", [])
        return {item["Key"].removeprefix(".publish/objects/") for item in listed}

    indexes = []
    for number in range(3):
        if number:
            change_component(app, f"v{number}")
        publish(run_playbook, tmp_path, variables)
        indexes.append(hashlib.sha256(index.read_bytes()).hexdigest())
        assert stored() == ({indexes[number - 1]} if number else set())


def loaded_in_the_browser(result: dict, index_html: bytes) -> set[str]:
    """The paths the page loaded through the site, after checking that the browser check ran on the index.html
    given and met no failure."""
    smoke = result["site_smoke"]
    assert smoke["skipped"] is False and smoke["failures"] == [], smoke
    (page,) = smoke["pages"]
    assert page["document_sha256"] == hashlib.sha256(index_html).hexdigest()
    assert all(request.get("status") == 200 for request in page["requests"]), page["requests"]
    return {urllib.parse.urlsplit(request["url"]).path for request in page["requests"]}


def test_a_build_shaped_like_the_real_apps_publishes_by_content_and_rolls_back(aws, run_playbook, tmp_path):
    # 55 files, 51 MB: a Vite chunk graph where one shared component's change renames 12 chunks, and 21 unhashed
    # images of up to 6 MB (tests/support/real_shaped.py). The site is the private bucket behind the CDN stand-in,
    # and every step ends with the page loaded in the browser through it.
    distribution_id = create_private_site(aws)
    s3 = localaws.boto3_client("s3", aws)
    dist = tmp_path / "dist"
    with cdn.health_backend() as backend, cdn.local_cdn(aws, BUCKET, backend=backend) as site:
        through_site = {"frontend_publish_site_url": site, "frontend_publish_site_smoke_required": True}
        variables = site_variables(
            aws, distribution_id, frontend_publish_build=False, frontend_publish_build_dir=str(dist), **through_site
        )
        real_shaped.generate(dist, version=0)
        first_index = (dist / "index.html").read_bytes()
        first, output = publish(
            run_playbook, tmp_path, {**variables, "frontend_publish_source": {"commit": COMMIT_ONE}}
        )
        assert (first["publish"]["uploaded"], first["publish"]["changed_keys"][-1]) == (55, "index.html")
        first_loaded = loaded_in_the_browser(first, first_index)
        # The page loaded index.html's references and, through the entry chunk's imports, the shared component.
        product_card = shared_component_path(dist)
        assert {*(f"/{path}" for path in referenced(first_index)), product_card, "/api/health"} <= first_loaded

        # Built again: every file new on disk, nothing uploaded, nothing invalidated.
        real_shaped.generate(dist, version=0)
        again, output = publish(
            run_playbook, tmp_path, {**variables, "frontend_publish_source": {"commit": COMMIT_ONE}}
        )
        assert again["publish"]["uploaded"] == 0 and changed_count(output) == 0
        assert loaded_in_the_browser(again, first_index) == first_loaded

        # One component changed: the 12 renamed chunks, then index.html; only / and /index.html invalidated.
        real_shaped.generate(dist, version=1)
        second_index = (dist / "index.html").read_bytes()
        change, output = publish(
            run_playbook, tmp_path, {**variables, "frontend_publish_source": {"commit": COMMIT_TWO}}
        )
        keys = change["publish"]["changed_keys"]
        assert len(keys) == 13 and keys[-1] == "index.html"
        assert all(key.startswith("assets/") and key.endswith(".js") for key in keys[:-1])
        assert change["invalidation"]["paths"] == ["/", "/index.html"]
        second_loaded = loaded_in_the_browser(change, second_index)
        assert shared_component_path(dist) in second_loaded and product_card not in second_loaded

        # Back to the first build: the first build's chunks are still there under their own names, so only
        # index.html is put back, and the browser loads the first build's chunks again.
        rolled, output = roll_back(run_playbook, tmp_path, site_variables(aws, distribution_id, **through_site))
        assert rolled["publish"]["changed_keys"] == ["index.html"]
        assert body(s3, "index.html") == first_index
        # With the site's URL known, what was put back is read through the site, not from the bucket.
        assert rolled["verify"]["checked"] == []
        read_back = rolled["smoke"]["checked"]
        assert [item["status"] for item in read_back] == [200] * (1 + len(rolled["build"]["referenced"]))
        assert read_back[0]["sha256"] == hashlib.sha256(first_index).hexdigest()
        assert latest_manifest(s3)["source"]["commit"] == COMMIT_ONE
        assert loaded_in_the_browser(rolled, first_index) == first_loaded


def shared_component_path(dist: Path) -> str:
    """The URL path of the shared component's chunk in the build in dist."""
    (chunk,) = (dist / "assets").glob(f"{real_shaped.CHANGED}-*.js")
    return f"/{chunk.relative_to(dist)}"
