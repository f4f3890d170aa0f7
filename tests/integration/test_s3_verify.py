"""flora.deploy.s3_verify through ansible-playbook against the moto server: a build published by s3_publish into a
private bucket (no bucket policy: anonymous requests get 403), read back with signed HeadObject requests. Both run as
the deployer (CI or AWX), with the policy the collection renders for the bucket and the prefix."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_s3_publish import (
    BUCKET,
    ENTRY,
    IMMUTABLE,
    JPG,
    REVALIDATE,
    create_bucket,
    deployer,
    publish,
    write_sample_build,
)
from tests.support import identities

REFERENCED = ["index.html", "assets/index-AbCd1234.js", "assets/index-EfGh5678.css", "flora-logo.png"]


def verify(run_playbook, tmp_path: Path, src: Path, *args: str, identity: identities.Identity, **variables) -> dict:
    """One s3_verify run as ``identity`` (the deployer); returns its result, a failure too."""
    result_file = tmp_path / "verify.json"
    result_file.unlink(missing_ok=True)
    run = run_playbook(
        "s3_verify/verify.yml", {"bucket": BUCKET, "src": str(src), **variables}, *args, identity=identity
    )
    assert run.rc == 0, run
    return json.loads(result_file.read_text())


def anonymous_status(endpoint: str, key: str) -> int:
    try:
        with urllib.request.urlopen(f"{endpoint}/{BUCKET}/{key}", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_a_build_published_into_a_private_bucket_reads_back_without_an_anonymous_request(aws, run_playbook, tmp_path):
    create_bucket(aws)
    dist = tmp_path / "dist"
    files = write_sample_build(dist)
    # Its policy names the prefix: it may read and write under shop/ only.
    shop_deployer = deployer(aws, prefix="/shop/")
    publish(run_playbook, tmp_path, dist, prefix="/shop/", identity=shop_deployer)
    assert anonymous_status(aws, "shop/index.html") == 403

    for args in ((), ("--check",)):
        result = verify(run_playbook, tmp_path, dist, *args, prefix="shop", paths=REFERENCED, identity=shop_deployer)
        assert result.get("failed") is not True, result
        assert result["changed"] is False
        assert result["failures"] == []
        assert [(entry["key"], entry["ok"]) for entry in result["checked"]] == [
            ("shop/" + path, True) for path in REFERENCED
        ]
        assert [entry["sha256"] for entry in result["checked"]] == [
            hashlib.sha256(files[path]).hexdigest() for path in REFERENCED
        ]
        assert [(entry["cache_control"], entry["size"]) for entry in result["checked"]] == [
            (ENTRY, len(files["index.html"])),
            (IMMUTABLE, len(files["assets/index-AbCd1234.js"])),
            (IMMUTABLE, len(files["assets/index-EfGh5678.css"])),
            (REVALIDATE, len(files["flora-logo.png"])),
        ]

    # Without paths, every file of the build.
    everything = verify(run_playbook, tmp_path, dist, prefix="shop", identity=shop_deployer)
    assert [entry["path"] for entry in everything["checked"]] == sorted(files)


def test_objects_that_are_not_the_build_fail_one_line_each(aws, run_playbook, tmp_path):
    s3 = create_bucket(aws)
    dist = tmp_path / "dist"
    write_sample_build(dist)
    publish(run_playbook, tmp_path, dist, identity=deployer(aws))
    css = "assets/index-EfGh5678.css"
    # Its headers rewritten in place: same content and ETag, so s3_publish's manifest still vouches for it.
    s3.copy_object(
        Bucket=BUCKET,
        Key=css,
        CopySource={"Bucket": BUCKET, "Key": css},
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        CacheControl=IMMUTABLE,
        Metadata=s3.head_object(Bucket=BUCKET, Key=css)["Metadata"],
    )
    s3.delete_object(Bucket=BUCKET, Key="flora-logo.png")
    # Other bytes of the same size under the old metadata; S3 keeps the SHA-256 of what it received.
    other = JPG.upper()
    s3.put_object(
        Bucket=BUCKET,
        Key="images/Roses.jpg",
        Body=other,
        ChecksumAlgorithm="SHA256",
        ContentType="image/jpeg",
        CacheControl=REVALIDATE,
        Metadata={"sha256": hashlib.sha256(JPG).hexdigest()},
    )

    result = verify(run_playbook, tmp_path, dist, identity=deployer(aws))

    assert result["failed"] is True
    failures = [
        f"s3://{BUCKET}/{css} has Content-Type text/plain (the build has text/css; charset=utf-8)",
        f"s3://{BUCKET}/flora-logo.png does not exist (the build has flora-logo.png)",
        (
            f"s3://{BUCKET}/images/Roses.jpg has SHA-256 checksum {hashlib.sha256(other).hexdigest()} "
            f"(the build has {hashlib.sha256(JPG).hexdigest()})"
        ),
    ]
    assert result["failures"] == failures
    assert result["msg"] == f"3 of 5 objects in s3://{BUCKET}/ are not the build in {dist}: " + "; ".join(failures)
    by_key = {entry["key"]: entry for entry in result["checked"]}
    assert by_key["images/Roses.jpg"]["sha256_from"] == "checksum"
    assert by_key["flora-logo.png"]["exists"] is False
    assert [entry["ok"] for entry in result["checked"]].count(True) == 2


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"paths": ["index.html", "robots.txt"]}, "paths names 1 file(s) the build does not have: robots.txt"),
        ({"src": "/nonexistent/dist"}, "Build directory /nonexistent/dist does not exist"),
    ],
)
def test_bad_input_fails_before_reading_the_bucket(aws, run_playbook, tmp_path, variables, message):
    create_bucket(aws)
    dist = tmp_path / "dist"
    write_sample_build(dist)
    src = Path(variables.pop("src", dist))
    result = verify(run_playbook, tmp_path, src, identity=deployer(aws), **variables)
    assert result["failed"] is True
    assert result["msg"] == message
