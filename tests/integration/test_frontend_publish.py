"""playbooks/publish_frontend.yml (role flora.deploy.frontend_publish) through ansible-playbook against moto.

The fixture app is built with pnpm in a copy under the test's tmp directory, never in the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import size_text
from tests.integration.conftest import REPO, playbook_environment
from tests.support import cdn, identities, localaws

FIXTURE_APP = REPO / "tests" / "fixtures" / "flora-app"
PUBLISH = "frontend_publish/publish.yml"
PLAYBOOK = REPO / "playbooks" / "publish_frontend.yml"
BUCKET = "flora-frontend-test"

IMMUTABLE = "public,max-age=31536000,immutable"
ENTRY = "public,max-age=60"
REVALIDATE = "public,max-age=0,must-revalidate"
JS = "text/javascript; charset=utf-8"

# A reference in Vite's index.html: src="/..." or href="/...".
REFERENCE = re.compile(r'(?:src|href)="/([^"]+)"')


# ---------------------------------------------------------------------------
# Helpers


def copy_app(tmp_path: Path) -> Path:
    """The fixture app without anything built or installed, to build in."""
    app = tmp_path / "flora-app"
    shutil.copytree(FIXTURE_APP, app, ignore=shutil.ignore_patterns("node_modules", "dist", ".env"))
    return app


def anonymous_status(endpoint: str, key: str, bucket: str = BUCKET) -> int:
    """The status an unsigned GET of the key gets from the bucket."""
    try:
        with urllib.request.urlopen(f"{endpoint}/{bucket}/{key}", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def create_private_site(endpoint: str, bucket: str = BUCKET) -> str:
    """Bucket + distribution, as the app has them: the bucket has no policy, so an anonymous read of an object gets
    403 and fails the test that makes it. The site is read through a local CDN that signs its requests
    (tests/support/cdn.py)."""
    return localaws.create_site(endpoint, bucket)


LOOPBACK = "on the build machine's loopback, which each visitor's browser would take for its own machine"

# The local CDN's /api/* goes to the backend; the publish tests have none, and load no page in a browser.
NO_BACKEND = "http://127.0.0.1:9"


def site_variables(endpoint: str, distribution_id: str, **extra) -> dict:
    variables = {
        "frontend_publish_bucket": BUCKET,
        "frontend_publish_distribution_id": distribution_id,
        "flora_aws_endpoint_url": endpoint,
    }
    variables.update(extra)
    return variables


def publish(
    run_playbook, tmp_path: Path, variables: dict, *args: str, playbook: str = PUBLISH, identity="deployer"
) -> tuple[dict, str]:
    """Run the playbook (a target that saves what the role registered) as the deployer, with the emulator
    authorizing every request; returns what the role registered and the output."""
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    run = run_playbook(playbook, variables, *args, identity=identity)
    assert run.rc == 0, run
    return json.loads(result_file.read_text()), run.output


def changed_count(output: str) -> int:
    return int(re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output).group(1))


def site_objects(s3, bucket: str = BUCKET) -> dict[str, dict]:
    contents = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket).build_full_result().get("Contents", [])
    return {item["Key"]: item for item in contents if not item["Key"].startswith(".publish/")}


def body(s3, key: str, bucket: str = BUCKET) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def referenced(index_html: str | bytes) -> list[str]:
    text = index_html.decode() if isinstance(index_html, bytes) else index_html
    return REFERENCE.findall(text)


def invalidations(endpoint: str, distribution_id: str) -> list[list[str]]:
    cloudfront = localaws.boto3_client("cloudfront", endpoint)
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"].get("Items", [])
    return [
        sorted(
            cloudfront.get_invalidation(DistributionId=distribution_id, Id=item["Id"])["Invalidation"][
                "InvalidationBatch"
            ]["Paths"]["Items"]
        )
        for item in listed
    ]


def change_component(app: Path, text: str) -> None:
    app_jsx = app / "apps" / "frontend" / "src" / "App.jsx"
    source = app_jsx.read_text()
    app_jsx.write_text(re.sub(r"</h1>", f" {text}</h1>", source, count=1))


def write_generated_build(dist: Path, version: str, chunks: int, chunk_size: int = 16 * 1024) -> dict[str, bytes]:
    """A Vite-like build: many content-hashed chunks, of which index.html loads the entry and preloads five
    (the rest are lazy, loaded by the entry), plus a file that is not content-hashed."""
    files: dict[str, bytes] = {}
    for number in range(chunks):
        # An 8-character hash with digits, as s3_publish's content-hash rule wants.
        name = f"assets/chunk{number}-{version}{number:04d}.js"
        files[name] = (f"/* {version} {number} */".encode() + b"x" * chunk_size)[:chunk_size]
    files["about.txt"] = f"Flora build {version}".encode()
    names = sorted(name for name in files if name.endswith(".js"))
    preloads = "".join(f'<link rel="modulepreload" href="/{name}">' for name in names[1:6])
    files["index.html"] = (
        f'<!doctype html><title>Flora {version}</title><script type="module" src="/{names[0]}"></script>{preloads}'
    ).encode()
    shutil.rmtree(dist, ignore_errors=True)
    for path, content in files.items():
        target = dist / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return files


def process_tree(pid: int) -> list[int]:
    """pid and its descendants. Ansible's workers start sessions of their own, so a process group is not enough."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, pending = [pid], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            tree.append(child)
            pending.append(child)
    return tree


def kill_tree(pid: int) -> None:
    for member in process_tree(pid):
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


def playbook_process(endpoint: str, tmp_path: Path, variables: dict) -> subprocess.Popen:
    """ansible-playbook with the environment run_playbook gives it, started in the background."""
    env = playbook_environment(endpoint, tmp_path)
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(REPO / "inventory" / "localhost.yml"),
        str(PLAYBOOK),
        "-e",
        json.dumps(variables),
    ]
    log = open(tmp_path / "interrupted.log", "wb")  # noqa: SIM115 - closed by the caller through the process
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


# ---------------------------------------------------------------------------
# Tests


def test_build_check_module(run_playbook):
    run = run_playbook("frontend_publish/build_check.yml")
    assert run.rc == 0, run
    assert "failed=0" in run.output and "ignored=2" in run.output


def test_publish_rebuild_and_one_component_change(aws, run_playbook, tmp_path):
    distribution_id = create_private_site(aws)
    localaws.seed_flora_parameters(aws)
    app = copy_app(tmp_path)
    s3 = localaws.boto3_client("s3", aws)
    variables = site_variables(
        aws,
        distribution_id,
        frontend_publish_app_dir=str(app),
        frontend_publish_env_render=True,
        frontend_publish_app_url="https://shop.flora.example",
    )
    dist = app / "apps" / "frontend" / "dist"

    # First publish: everything goes up with the right headers, the env reached the bundle.
    first, output = publish(run_playbook, tmp_path, variables)
    env_file = app / "apps" / "frontend" / ".env"
    assert env_file.read_text().splitlines() == [
        "VITE_API_URL='https://shop.flora.example/api'",
        "VITE_APP_NAME='Flora'",
        "VITE_APP_URL='https://shop.flora.example'",
        "VITE_AUTH0_AUDIENCE='https://api.flora.example'",
        "VITE_AUTH0_CLIENT_ID='fLoRaClIeNtId0123456789'",
        "VITE_AUTH0_DOMAIN='flora-demo.au.auth0.com'",
        "VITE_STRIPE_PUBLISHABLE_KEY='pk_test_51FloraPublishable'",
    ]
    index = (dist / "index.html").read_bytes()
    js, css = sorted(path for path in referenced(index) if path.startswith("assets/"))
    assert js.endswith(".js") and css.endswith(".css")
    expected = {
        "index.html": (ENTRY, "text/html; charset=utf-8"),
        js: (IMMUTABLE, JS),
        css: (IMMUTABLE, "text/css; charset=utf-8"),
        "flora-logo.png": (REVALIDATE, "image/png"),
        "images/Roses.jpg": (REVALIDATE, "image/jpeg"),
    }
    assert set(site_objects(s3)) == set(expected)
    for key, headers in expected.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["CacheControl"], head["ContentType"]) == headers, key
        assert body(s3, key) == (dist / key).read_bytes(), key
    assert b"https://shop.flora.example/api" in body(s3, js)
    assert first["publish"]["uploaded"] == 5
    # The run says what it published.
    assert first["publish"]["msg"] == (
        f"Published {first['publish']['build_id']} to s3://{BUCKET}/: 5 files uploaded "
        f"({size_text(first['publish']['bytes_uploaded'])}), 0 unchanged, 0 deleted"
    )
    assert f'"msg": "{first["publish"]["msg"]}"' in output

    def content(path):
        data = (dist / path).read_bytes()
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    assert first["build"]["referenced"] == [
        {"path": js, "url": f"/{js}", "cache_control": IMMUTABLE, "content_type": JS, **content(js)},
        {
            "path": css,
            "url": f"/{css}",
            "cache_control": IMMUTABLE,
            "content_type": "text/css; charset=utf-8",
            **content(css),
        },
        {
            "path": "flora-logo.png",
            "url": "/flora-logo.png",
            "cache_control": REVALIDATE,
            "content_type": "image/png",
            **content("flora-logo.png"),
        },
    ]
    # index.html is the distribution's default root object: / is invalidated with it.
    assert first["invalidation"]["paths"] == ["/", "/flora-logo.png", "/images/Roses.jpg", "/index.html"]
    assert invalidations(aws, distribution_id) == [["/", "/flora-logo.png", "/images/Roses.jpg", "/index.html"]]
    # No site URL: index.html, then every file it references, read back from the private bucket with signed
    # HeadObject requests and compared with the build; nothing read over HTTP.
    assert first["smoke"] is None
    assert [(item["key"], item["ok"]) for item in first["verify"]["checked"]] == [
        ("index.html", True),
        (js, True),
        (css, True),
        ("flora-logo.png", True),
    ]
    assert first["verify"]["checked"][0]["sha256"] == first["build"]["index"]["sha256"]
    assert [item["sha256"] for item in first["verify"]["checked"][1:]] == [
        hashlib.sha256((dist / path).read_bytes()).hexdigest() for path in (js, css, "flora-logo.png")
    ]
    assert anonymous_status(aws, "index.html") == 403

    # A rebuild without a source change: fresh files, nothing uploaded, nothing invalidated, changed=0.
    built_at = (dist / "index.html").stat().st_mtime_ns
    etags = {key: item["ETag"] for key, item in site_objects(s3).items()}
    again, output = publish(run_playbook, tmp_path, variables)
    assert (dist / "index.html").stat().st_mtime_ns != built_at
    assert changed_count(output) == 0, output
    assert (again["publish"]["uploaded"], again["publish"]["unchanged"]) == (0, 5)
    assert (again["invalidation"]["changed"], again["invalidation"]["paths"]) == (False, [])
    assert len(invalidations(aws, distribution_id)) == 1
    assert {key: item["ETag"] for key, item in site_objects(s3).items()} == etags

    # One component changes: its chunk and index.html go up, only /index.html is invalidated, the old chunk stays.
    change_component(app, "Today")
    change, output = publish(run_playbook, tmp_path, variables)
    new_js = next(path for path in referenced((dist / "index.html").read_bytes()) if path.endswith(".js"))
    assert new_js != js
    assert change["publish"]["changed_keys"] == [new_js, "index.html"]
    assert change["invalidation"]["paths"] == ["/", "/index.html"]
    assert sorted(invalidations(aws, distribution_id)) == sorted(
        [["/", "/flora-logo.png", "/images/Roses.jpg", "/index.html"], ["/", "/index.html"]]
    )
    assert [item["key"] for item in change["verify"]["checked"]][:2] == ["index.html", new_js]
    assert set(site_objects(s3)) == set(expected) | {new_js}
    assert body(s3, "index.html") == (dist / "index.html").read_bytes()
    assert b"Today" in body(s3, new_js)
    assert changed_count(output) == 1  # the publish, which invalidated too


def test_builds_older_than_the_kept_ones_age_out(aws, run_playbook, tmp_path):
    # keep_previous=1: the current build and one before it stay whole; the third publish drops the first.
    distribution_id = create_private_site(aws)
    localaws.seed_flora_parameters(aws)
    app = copy_app(tmp_path)
    s3 = localaws.boto3_client("s3", aws)
    variables = site_variables(
        aws, distribution_id, frontend_publish_app_dir=str(app), frontend_publish_keep_previous=1
    )
    dist = app / "apps" / "frontend" / "dist"
    builds = []
    for number in range(3):
        if number:
            change_component(app, f"v{number}")
        result = publish(run_playbook, tmp_path, variables)[0]
        builds.append(set(referenced((dist / "index.html").read_bytes())))
        present = set(site_objects(s3))
        for kept in builds[-2:]:
            assert kept <= present, kept - present
        assert result["publish"]["deleted"] == (1 if number == 2 else 0)

    # No frontend_publish_app_url: the build-time env has the distribution's URL (its alias).
    env = (app / "apps" / "frontend" / ".env").read_text().splitlines()
    assert "VITE_APP_URL='https://flora-frontend-test.flora.example'" in env
    assert "VITE_API_URL='https://flora-frontend-test.flora.example/api'" in env

    first_only = builds[0] - builds[1] - builds[2]
    assert len(first_only) == 1 and next(iter(first_only)).endswith(".js")
    assert result["publish"]["deleted_keys"] == sorted(first_only)
    assert first_only.isdisjoint(site_objects(s3))
    manifests = s3.list_objects_v2(Bucket=BUCKET, Prefix=".publish/manifests/").get("Contents", [])
    assert len(manifests) == 2


def prepare_bad_input(case: str, endpoint: str, tmp_path: Path, distribution_id: str) -> tuple[dict, str]:
    dist = tmp_path / "dist"
    dist.mkdir()
    build = {"frontend_publish_build": False, "frontend_publish_build_dir": str(dist)}
    good_index = '<script type="module" src="/assets/index-AbCd1234.js"></script>'
    if case != "empty build directory":
        (dist / "assets").mkdir()
        (dist / "assets" / "index-AbCd1234.js").write_text("console.log(1)")
    if case not in ("empty build directory", "no index.html"):
        (dist / "index.html").write_text(good_index)
    if case == "empty build directory":
        return build, f"Build directory {dist} contains no files"
    if case == "no build directory":
        return {"frontend_publish_build": False}, (
            "Set frontend_publish_app_dir to the app checkout (the pnpm workspace root) to build it, or "
            "frontend_publish_build=false and frontend_publish_build_dir to publish a build directory as it is."
        )
    if case == "no index.html":
        return build, f"Build directory {dist} has no index.html; refusing to publish an incomplete build"
    if case == "missing asset":
        (dist / "index.html").write_text(good_index + '<link rel="stylesheet" href="/assets/index-EfGh5678.css">')
        return build, (
            f"index.html in {dist} references 1 file(s) the build does not have: "
            "assets/index-EfGh5678.css (<link href>); refusing to publish an incomplete build"
        )
    if case == "unknown bucket":
        return {
            **build,
            "frontend_publish_bucket": "flora-no-such-bucket",
        }, "Bucket flora-no-such-bucket does not exist"
    if case == "unknown distribution":
        return (
            {**build, "frontend_publish_distribution_id": "E0000000000000"},
            "CloudFront distribution E0000000000000 does not exist",
        )
    if case == "no site URL to build for":
        return (
            {
                "frontend_publish_app_dir": str(copy_app(tmp_path)),
                "frontend_publish_invalidate": False,
                "frontend_publish_distribution_id": "",
            },
            (
                "frontend_publish_app_url and frontend_publish_site_url are empty and there is no distribution to "
                "read the site's URL from"
            ),
        )
    if case == "localhost API URL":
        localaws.seed_flora_parameters(endpoint)
        app = copy_app(tmp_path)
        return (
            {"frontend_publish_app_dir": str(app), "frontend_publish_app_url": "http://localhost:3001"},
            (
                f"The build of {app}/apps/frontend would bake into its public bundle: "
                f"VITE_API_URL is http://localhost:3001/api (.env), {LOOPBACK}; "
                f"VITE_APP_URL is http://localhost:3001 (.env), {LOOPBACK}."
            ),
        )
    if case == "missing VITE_ keys":
        app = copy_app(tmp_path)
        (app / "apps" / "frontend" / ".env.production").write_text("VITE_API_URL=https://shop.flora.example/api\n")
        return (
            {"frontend_publish_app_dir": str(app), "frontend_publish_env_render": False},
            (
                f"The build of {app}/apps/frontend would bake into its public bundle: VITE_AUTH0_AUDIENCE is not set; "
                "VITE_AUTH0_CLIENT_ID is not set; VITE_AUTH0_DOMAIN is not set; VITE_STRIPE_PUBLISHABLE_KEY is not set."
            ),
        )
    assert case == "secret in the build env"
    app = copy_app(tmp_path)
    return (
        {
            "frontend_publish_app_dir": str(app),
            "frontend_publish_env_render": True,
            "frontend_publish_env_extra_parameters": {"STRIPE_SECRET_KEY": "stripe_secret_key"},
        },
        (
            f"Only VITE_ keys may go into {app}/apps/frontend/.env: everything in it is baked into the public bundle. "
            "Not allowed: STRIPE_SECRET_KEY. Nothing was read from Parameter Store."
        ),
    )


@pytest.mark.parametrize(
    "case",
    [
        "empty build directory",
        "no index.html",
        "no build directory",
        "missing asset",
        "unknown bucket",
        "unknown distribution",
        "secret in the build env",
        "no site URL to build for",
        "localhost API URL",
        "missing VITE_ keys",
    ],
)
def test_bad_input_fails_before_any_upload(aws, run_playbook, tmp_path, case):
    distribution_id = create_private_site(aws)
    extra, message = prepare_bad_input(case, aws, tmp_path, distribution_id)
    run = run_playbook(PUBLISH, site_variables(aws, distribution_id, **extra), identity="deployer")
    assert run.rc == 2, run
    assert message in " ".join(run.output.split()), run
    assert "failed=1" in run.output
    s3 = localaws.boto3_client("s3", aws)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert invalidations(aws, distribution_id) == []
    if case == "unknown bucket":
        # s3_publish checks the bucket itself: its listing fails before anything is written, or created.
        assert "flora-no-such-bucket" not in [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
    if case in ("empty build directory", "no index.html", "missing asset", "unknown bucket", "unknown distribution"):
        # The publish checks the build, the bucket and the distribution before it writes anything.
        assert "TASK [flora.deploy.frontend_publish : Publish the build to the bucket" in run.output
    else:
        assert "Publish the build to the bucket" not in run.output
    if case == "secret in the build env":
        assert not (tmp_path / "flora-app" / "apps" / "frontend" / ".env").exists()
    if case in ("secret in the build env", "no site URL to build for", "localhost API URL", "missing VITE_ keys"):
        # Nothing installed or built.
        assert not (tmp_path / "flora-app" / "node_modules").exists()
        assert not (tmp_path / "flora-app" / "apps" / "frontend" / "dist").exists()


def test_check_mode_changes_nothing(aws, run_playbook, tmp_path):
    distribution_id = create_private_site(aws)
    dist = tmp_path / "dist"
    shutil.copytree(REPO / "tests" / "fixtures" / "sample-build", dist)
    variables = site_variables(aws, distribution_id, frontend_publish_build=False, frontend_publish_build_dir=str(dist))
    s3 = localaws.boto3_client("s3", aws)

    predicted, output = publish(run_playbook, tmp_path, variables, "--check")
    assert predicted["publish"]["uploaded"] == 6 and predicted["publish"]["changed"] is True
    assert predicted["invalidation"]["changed"] is True and predicted["invalidation"]["invalidation_id"] is None
    assert predicted["smoke"] is None and "Read index.html and every file it references back" not in output
    assert predicted["verify"]["checked"] == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert invalidations(aws, distribution_id) == []

    done, output = publish(run_playbook, tmp_path, variables)
    assert done["publish"]["uploaded"] == 6
    predicted, output = publish(run_playbook, tmp_path, variables, "--check")
    assert changed_count(output) == 0
    assert predicted["publish"]["uploaded"] == 0


def test_smoke_test_reads_a_given_site_url_and_checks_headers(aws, run_playbook, tmp_path):
    # The site is the private bucket behind a local CDN that reads it with signed requests, as CloudFront's origin
    # access does; the build is published under a prefix the CDN serves at /shop/.
    distribution_id = create_private_site(aws)
    dist = tmp_path / "dist"
    shutil.copytree(REPO / "tests" / "fixtures" / "sample-build", dist)
    s3 = localaws.boto3_client("s3", aws)
    with cdn.local_cdn(aws, BUCKET, backend=NO_BACKEND) as site:
        variables = site_variables(
            aws,
            distribution_id,
            frontend_publish_build=False,
            frontend_publish_build_dir=str(dist),
            frontend_publish_prefix="/shop/",
            frontend_publish_site_url=f"{site}/shop/",
            # No backend behind the CDN's /api: the browser check belongs to a site (tests/hosts/test_site.py).
            frontend_publish_site_smoke="off",
            frontend_publish_smoke_retries=1,
            frontend_publish_smoke_delay=0,
        )
        result, output = publish(run_playbook, tmp_path, variables)
        assert f"Read index.html and every file it references back from {site}/shop" in output
        assert [(item["url"], item["status"]) for item in result["smoke"]["checked"]] == [
            (f"{site}/shop/index.html", 200),
            (f"{site}/shop/assets/index-3TWYBq9S.js", 200),
            (f"{site}/shop/assets/index-B7hC2kQe.css", 200),
            (f"{site}/shop/flora-logo.png", 200),
        ]
        assert result["smoke"]["checked"][0]["sha256"] == result["build"]["index"]["sha256"]
        assert result["verify"]["checked"] == []
        assert result["publish"]["changed_keys"][-1] == "shop/index.html"
        assert anonymous_status(aws, "shop/index.html") == 403

        # Someone rewrites a stylesheet's headers in place: same content and ETag, so nothing is uploaded,
        # but the site no longer serves what the publish promised.
        s3.copy_object(
            Bucket=BUCKET,
            Key="shop/assets/index-B7hC2kQe.css",
            CopySource={"Bucket": BUCKET, "Key": "shop/assets/index-B7hC2kQe.css"},
            MetadataDirective="REPLACE",
            ContentType="text/plain",
            CacheControl=IMMUTABLE,
            Metadata=s3.head_object(Bucket=BUCKET, Key="shop/assets/index-B7hC2kQe.css")["Metadata"],
        )
        run = run_playbook(PUBLISH, variables, identity="deployer")
        assert run.rc == 2, run
        assert (
            f"{site}/shop/assets/index-B7hC2kQe.css answered 200 with Cache-Control {IMMUTABLE} and "
            f"Content-Type text/plain; expected 200, {IMMUTABLE} and text/css; charset=utf-8"
        ) in " ".join(run.output.split()), run

    # A site URL that serves another index.html fails, naming what it got.
    other = "flora-frontend-other"
    s3.create_bucket(Bucket=other, CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
    s3.put_object(Bucket=other, Key="index.html", Body=b"<!doctype html><title>another site</title>")
    with cdn.local_cdn(aws, other, backend=NO_BACKEND) as other_site:
        run = run_playbook(PUBLISH, {**variables, "frontend_publish_site_url": other_site}, identity="deployer")
    assert run.rc == 2, run
    assert f"the index.html just published: {other_site}/index.html answered 200" in run.output


def test_read_back_from_the_private_bucket_names_each_object_that_is_not_the_build(aws, run_playbook, tmp_path):
    distribution_id = create_private_site(aws)
    dist = tmp_path / "dist"
    shutil.copytree(REPO / "tests" / "fixtures" / "sample-build", dist)
    s3 = localaws.boto3_client("s3", aws)
    variables = site_variables(aws, distribution_id, frontend_publish_build=False, frontend_publish_build_dir=str(dist))
    result = publish(run_playbook, tmp_path, variables)[0]
    assert [(item["key"], item["ok"]) for item in result["verify"]["checked"]] == [
        ("index.html", True),
        ("assets/index-3TWYBq9S.js", True),
        ("assets/index-B7hC2kQe.css", True),
        ("flora-logo.png", True),
    ]

    # The stylesheet's headers rewritten in place (s3_publish's manifest still vouches for it, so nothing is
    # uploaded), and the logo overwritten with other bytes of the same size under its old metadata and headers.
    css = "assets/index-B7hC2kQe.css"
    s3.copy_object(
        Bucket=BUCKET,
        Key=css,
        CopySource={"Bucket": BUCKET, "Key": css},
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        CacheControl=IMMUTABLE,
        Metadata=s3.head_object(Bucket=BUCKET, Key=css)["Metadata"],
    )
    logo = "flora-logo.png"
    published_logo = s3.head_object(Bucket=BUCKET, Key=logo)
    logo_bytes = (dist / logo).read_bytes()
    other_logo = logo_bytes[:-1] + bytes([logo_bytes[-1] ^ 1])
    s3.put_object(
        Bucket=BUCKET,
        Key=logo,
        Body=other_logo,
        ChecksumAlgorithm="SHA256",
        ContentType=published_logo["ContentType"],
        CacheControl=published_logo["CacheControl"],
        Metadata=published_logo["Metadata"],
    )

    run = run_playbook(PUBLISH, variables, identity="deployer")
    assert run.rc == 2, run
    assert "Publish the build to the bucket" in run.output
    message = " ".join(run.output.split())
    assert f"s3://{BUCKET}/{css} has Content-Type text/plain (the build has text/css; charset=utf-8)" in message, run
    assert (
        f"s3://{BUCKET}/{logo} has SHA-256 checksum {hashlib.sha256(other_logo).hexdigest()} "
        f"(the build has {hashlib.sha256(logo_bytes).hexdigest()})"
    ) in message, run
    assert f"2 of 4 objects in s3://{BUCKET}/ are not the build:" in message


def test_interrupted_publish_keeps_the_previous_site_and_the_next_run_completes(aws, run_playbook, tmp_path):
    distribution_id = create_private_site(aws)
    s3 = localaws.boto3_client("s3", aws)
    dist = tmp_path / "dist"
    variables = site_variables(
        aws,
        distribution_id,
        frontend_publish_build=False,
        frontend_publish_build_dir=str(dist),
        frontend_publish_workers=1,
    )
    previous = write_generated_build(dist, "aAaA", chunks=300)
    publish(run_playbook, tmp_path, {**variables, "frontend_publish_workers": 8})
    assert body(s3, "index.html") == previous["index.html"]

    current = write_generated_build(dist, "bBbB", chunks=300)
    new_chunks = {path for path in current if path.startswith("assets/")}
    process = playbook_process(aws, tmp_path, variables)
    try:
        deadline = time.monotonic() + 120
        while len(new_chunks & set(site_objects(s3))) < 20:
            assert process.poll() is None, (tmp_path / "interrupted.log").read_text()
            assert time.monotonic() < deadline, "the publish never started uploading"
            time.sleep(0.05)
        kill_tree(process.pid)
    finally:
        process.wait(timeout=30)
    time.sleep(0.5)  # a request moto had already received when the publish died

    # The site still serves the previous index.html, and every file it references is there.
    uploaded = new_chunks & set(site_objects(s3))
    assert 20 <= len(uploaded) < len(new_chunks)
    time.sleep(1)
    assert new_chunks & set(site_objects(s3)) == uploaded, "the publish went on after the kill"
    assert body(s3, "index.html") == previous["index.html"]
    present = set(site_objects(s3))
    assert len(referenced(previous["index.html"])) == 6
    assert set(previous) - {"about.txt"} <= present  # the whole previous build
    assert body(s3, "about.txt") == current["about.txt"]  # uploaded first, before the kill

    # The next run uploads the rest, then index.html, and invalidates what the killed run had already uploaded.
    result = publish(run_playbook, tmp_path, variables)[0]
    assert result["publish"]["uploaded"] == len(new_chunks) - len(uploaded) + 1
    assert result["publish"]["changed_keys"][-1] == "index.html"
    assert result["invalidation"]["paths"] == ["/", "/about.txt", "/index.html"]
    assert body(s3, "index.html") == current["index.html"]
    present = set(site_objects(s3))
    assert set(current) <= present
    assert set(previous) <= present  # the previous build is kept


def test_a_build_that_holds_a_secret_is_not_published(aws, run_playbook, tmp_path):
    # A SecureString of the environment, JSON-escaped inside a chunk as Vite inlines a define, and a secret of the
    # backend's env file in a public file: each is named with its file, its value is in no output, and nothing is
    # written. The same build without them publishes, scanned. An administrator publishes: the deployer may not
    # read the environment's SecureStrings, and scans the env file only (test_iam_policies.py).
    distribution_id = create_private_site(aws)
    seeded = localaws.seed_flora_parameters(aws)
    secret_name = f"{localaws.FLORA_PREFIX}/stripe_secret_key"
    backend_env = tmp_path / "backend.env"
    jwt_secret = "jwt-secret-from-the-backend-env"
    backend_env.write_text(f"NODE_ENV=production\nJWT_SECRET={jwt_secret}\nSTRIPE_PUBLISHABLE_KEY=pk_test_public\n")
    dist = tmp_path / "dist"
    write_generated_build(dist, "s1", chunks=3)
    chunk = next((dist / "assets").glob("chunk1-*.js"))
    clean_chunk = chunk.read_bytes()
    chunk.write_bytes(clean_chunk + b"const key = " + json.dumps(seeded[secret_name]).encode() + b";")
    about = dist / "about.txt"
    about.write_text(f"Flora build s1 {jwt_secret}")
    # A public value that is also in the backend's env file is not a secret.
    (dist / "public.txt").write_text("pk_test_public production")
    variables = site_variables(
        aws,
        distribution_id,
        frontend_publish_build=False,
        frontend_publish_build_dir=str(dist),
        frontend_publish_secret_scan_env_files=[str(backend_env)],
    )
    s3 = localaws.boto3_client("s3", aws)

    administrator = identities.administrator(aws)
    run = run_playbook(PUBLISH, variables, "-vvv", "--diff", identity=administrator)
    assert run.rc == 2, run
    assert (
        f"The build holds secrets and was not published: the value of JWT_SECRET in {backend_env} is in about.txt; "
        f"the value of SecureString parameter {secret_name} is in {chunk.relative_to(dist)}. Nothing was written."
    ) in run.output
    secrets = localaws.secret_forms([*localaws.FLORA_SECURE_PARAMETERS.values(), jwt_secret])
    assert [secret for secret in secrets if secret in run.output] == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert invalidations(aws, distribution_id) == []

    chunk.write_bytes(clean_chunk)
    about.write_text("Flora build s1")
    published, _output = publish(run_playbook, tmp_path, variables, identity=administrator)
    scan = published["publish"]["secret_scan"]
    secure_count = len(localaws.FLORA_SECURE_PARAMETERS)
    # The SecureStrings and JWT_SECRET; every text file (the chunks, index.html and the two .txt files).
    assert scan == {"secrets": secure_count + 1, "files": 6, "parameters_readable": True}
    assert published["publish"]["uploaded"] == 6
