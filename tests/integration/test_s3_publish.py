"""flora.deploy.s3_publish through ansible-playbook against the moto server, as the deployer (CI or AWX) with the
policy the collection renders for the bucket and the prefix, while the server authorizes every request."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from tests.support import identities, localaws

BUCKET = "flora-frontend-test"
PNG = b"\x89PNG\r\n\x1a\n flora logo"
JPG = b"\xff\xd8\xff\xe0 roses"

IMMUTABLE = "public,max-age=31536000,immutable"
ENTRY = "public,max-age=60"
REVALIDATE = "public,max-age=0,must-revalidate"


def create_bucket(endpoint: str, name: str = BUCKET):
    s3 = localaws.boto3_client("s3", endpoint)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
    return s3


def write_sample_build(dist: Path, js_hash: str = "AbCd1234", js: str = "console.log('flora')") -> dict[str, bytes]:
    """A Vite-like build; rewritten from scratch each time, so every file gets a fresh mtime."""
    files = {
        "index.html": (
            f'<!doctype html><script type="module" src="/assets/index-{js_hash}.js"></script>'
            '<link rel="stylesheet" href="/assets/index-EfGh5678.css"><img src="/flora-logo.png">'
        ).encode(),
        f"assets/index-{js_hash}.js": js.encode(),
        "assets/index-EfGh5678.css": b"body{color:#2f6b3a}",
        "flora-logo.png": PNG,
        "images/Roses.jpg": JPG,
    }
    shutil.rmtree(dist, ignore_errors=True)
    later = time.time() + 3600
    for path, body in files.items():
        target = dist / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        os.utime(target, (later, later))
    return files


def deployer(endpoint: str, prefix: str = "", bucket: str = BUCKET) -> identities.Identity:
    """The deployer whose policy names the bucket and the prefix: the module's targets call them bucket and prefix,
    not the role's variable names run_playbook(identity="deployer") reads the resources from."""
    return identities.production_identities(endpoint, frontend_bucket=bucket, frontend_prefix=prefix).deployer


def publish(run_playbook, tmp_path: Path, src: Path, *args: str, identity: identities.Identity, **variables) -> dict:
    """One s3_publish run as ``identity`` (the deployer: ``deployer(endpoint, prefix)``); returns its result."""
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    run = run_playbook(
        "s3_publish/publish.yml", {"bucket": BUCKET, "src": str(src), **variables}, *args, identity=identity
    )
    assert run.rc == 0, run
    return json.loads(result_file.read_text())


def object_keys(s3, bucket: str = BUCKET) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def site_keys(s3, prefix: str = "") -> set[str]:
    return {key[len(prefix) :] for key in object_keys(s3) if ".publish/" not in key}


def manifest_keys(s3) -> list[str]:
    return sorted(key for key in object_keys(s3) if ".publish/manifests/" in key)


def test_check_mode_then_publish_sets_headers(aws, run_playbook, tmp_path):
    s3 = create_bucket(aws)
    dist = tmp_path / "dist"
    files = write_sample_build(dist)

    check = publish(run_playbook, tmp_path, dist, "--check", identity=deployer(aws))
    assert check["changed"] is True
    assert check["uploaded"] == 5
    assert check["changed_keys"][-1] == "index.html"
    assert check["msg"].startswith(f"Would publish {check['build_id']} to s3://{BUCKET}/, uploading 5 files (")
    assert object_keys(s3) == set()

    result = publish(run_playbook, tmp_path, dist, encryption="AES256", identity=deployer(aws))
    assert result["changed"] is True
    assert (result["uploaded"], result["unchanged"], result["deleted"]) == (5, 0, 0)
    assert result["bytes_uploaded"] == sum(len(body) for body in files.values())
    assert result["msg"] == (
        f"Published {result['build_id']} to s3://{BUCKET}/: 5 files uploaded ({result['bytes_uploaded']} bytes), "
        "0 unchanged, 0 deleted"
    )
    assert result["invalidation_paths"] == ["/flora-logo.png", "/images/Roses.jpg", "/index.html"]
    assert manifest_keys(s3) == [result["manifest_key"]]
    expected = {
        "index.html": (ENTRY, "text/html; charset=utf-8"),
        "assets/index-AbCd1234.js": (IMMUTABLE, "text/javascript; charset=utf-8"),
        "assets/index-EfGh5678.css": (IMMUTABLE, "text/css; charset=utf-8"),
        "flora-logo.png": (REVALIDATE, "image/png"),
        "images/Roses.jpg": (REVALIDATE, "image/jpeg"),
    }
    assert site_keys(s3) == set(expected)
    for key, (cache_control, content_type) in expected.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["CacheControl"], head["ContentType"]) == (cache_control, content_type), key
        assert head["Metadata"]["sha256"] == hashlib.sha256(files[key]).hexdigest()
        assert head["ServerSideEncryption"] == "AES256"
        assert "immutable" not in head["CacheControl"] or key.startswith("assets/")
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=result["manifest_key"])["Body"].read())
    assert manifest["objects"]["index.html"]["sha256"] == hashlib.sha256(files["index.html"]).hexdigest()


def test_rebuild_uploads_nothing_and_one_change_uploads_two(aws, run_playbook, tmp_path):
    s3 = create_bucket(aws)
    dist = tmp_path / "dist"
    write_sample_build(dist)
    first = publish(run_playbook, tmp_path, dist, identity=deployer(aws))
    assert first["uploaded"] == 5
    before = {key: s3.head_object(Bucket=BUCKET, Key=key)["ETag"] for key in site_keys(s3)}

    write_sample_build(dist)
    again = publish(run_playbook, tmp_path, dist, identity=deployer(aws))
    assert again["changed"] is False
    assert (again["uploaded"], again["unchanged"], again["bytes_uploaded"]) == (0, 5, 0)
    assert again["changed_keys"] == [] and again["invalidation_paths"] == []
    assert again["build_id"] == first["build_id"]
    assert again["msg"] == f"{first['build_id']} is live in s3://{BUCKET}/ already: nothing to publish"
    assert manifest_keys(s3) == [first["manifest_key"]]

    write_sample_build(dist, js_hash="XyZw9876", js="console.log('flora v2')")
    change = publish(run_playbook, tmp_path, dist, identity=deployer(aws))
    assert change["changed"] is True
    assert change["uploaded"] == 2
    assert change["changed_keys"] == ["assets/index-XyZw9876.js", "index.html"]
    assert change["invalidation_paths"] == ["/index.html"]
    assert (change["deleted"], change["retained"]) == (0, 1)
    assert "assets/index-AbCd1234.js" in site_keys(s3)
    after = {key: s3.head_object(Bucket=BUCKET, Key=key)["ETag"] for key in site_keys(s3)}
    unchanged = ["assets/index-EfGh5678.css", "flora-logo.png", "images/Roses.jpg", "assets/index-AbCd1234.js"]
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}
    assert manifest_keys(s3) == sorted([first["manifest_key"], change["manifest_key"]])


def test_old_builds_age_out_after_keep_previous(aws, run_playbook, tmp_path):
    s3 = create_bucket(aws)
    dist = tmp_path / "dist"
    hashes = ["AbCd1234", "XyZw9876", "Qr5tUv12", "Mn0pLk34"]
    results = []
    # Its policy names the prefix: it may write and delete under site/ only.
    site_deployer = deployer(aws, prefix="/site")
    for number, js_hash in enumerate(hashes):
        write_sample_build(dist, js_hash=js_hash, js=f"console.log({number})")
        results.append(publish(run_playbook, tmp_path, dist, prefix="/site", keep_previous=2, identity=site_deployer))
        present = site_keys(s3, "site/")
        if number < 3:
            assert {f"assets/index-{h}.js" for h in hashes[: number + 1]} <= present
            assert results[-1]["deleted"] == 0

    last = results[-1]
    assert last["deleted_keys"] == ["site/assets/index-AbCd1234.js"]
    assert last["retained"] == 2
    present = site_keys(s3, "site/")
    assert "assets/index-AbCd1234.js" not in present
    assert manifest_keys(s3) == sorted(result["manifest_key"] for result in results[1:])
    for key in manifest_keys(s3):
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        missing = set(manifest["objects"]) - present
        assert not missing, (key, missing)


def test_first_publish_adopts_objects_published_by_aws_s3_sync(aws, run_playbook, tmp_path):
    s3 = create_bucket(aws)
    old = {"index.html": b"<old>", "assets/index-0ld12345.js": b"old()", "flora-logo.png": PNG}
    for key, body in old.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body, CacheControl=IMMUTABLE)
    dist = tmp_path / "dist"
    write_sample_build(dist)

    first = publish(run_playbook, tmp_path, dist, keep_previous=1, identity=deployer(aws))
    assert first["deleted"] == 0 and first["retained"] == 1
    assert first["uploaded"] == 5
    assert "assets/index-0ld12345.js" in site_keys(s3)
    manifests = manifest_keys(s3)
    assert len(manifests) == 2 and manifests[-1] == first["manifest_key"]
    adopted = json.loads(s3.get_object(Bucket=BUCKET, Key=manifests[0])["Body"].read())
    assert adopted["adopted"] is True
    assert set(adopted["objects"]) == {"assets/index-0ld12345.js"}

    write_sample_build(dist, js_hash="XyZw9876", js="console.log(2)")
    second = publish(run_playbook, tmp_path, dist, keep_previous=1, identity=deployer(aws))
    assert second["deleted_keys"] == ["assets/index-0ld12345.js"]
    assert manifest_keys(s3) == sorted([first["manifest_key"], second["manifest_key"]])
    assert "assets/index-AbCd1234.js" in site_keys(s3)


def test_lifecycle_playbook(aws, run_playbook):
    s3 = create_bucket(aws)
    run = run_playbook("s3_publish/lifecycle.yml", {"bucket": BUCKET}, identity=deployer(aws, prefix="/lifecycle"))
    assert run.rc == 0, run
    assert "failed=0" in run.output
    assert site_keys(s3, "lifecycle/") == {"index.html", "assets/app-Lc9Kx2Qa.js", "robots.txt"}
    assert s3.get_object(Bucket=BUCKET, Key="lifecycle/index.html")["Body"].read().startswith(b"<title>Flora")


def test_bad_input_fails_clearly_before_any_upload(aws, run_playbook, tmp_path):
    s3 = create_bucket(aws)
    dist = tmp_path / "dist"
    write_sample_build(dist)
    # The deployer of flora-no-such-bucket, the only bucket the playbook sends a request for (every other case fails
    # before one): its policy was rendered for a bucket that was never made, so S3 answers that it does not exist.
    # (A deployer without s3:ListBucket on it would get AccessDenied here: the emulator authorizes before it looks
    # the bucket up.)
    missing_bucket_deployer = deployer(aws, bucket="flora-no-such-bucket")
    run = run_playbook("s3_publish/errors.yml", {"bucket": BUCKET, "src": str(dist)}, identity=missing_bucket_deployer)
    assert run.rc == 0, run
    assert "failed=0" in run.output and "ignored=6" in run.output
    assert object_keys(s3) == set()
    buckets = [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]]
    assert buckets == [BUCKET]
