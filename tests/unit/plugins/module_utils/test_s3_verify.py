from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading

import botocore.exceptions
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    CACHE_ENTRY_DOCUMENT,
    CACHE_IMMUTABLE,
    CACHE_REVALIDATE,
    LocalFile,
    PublishError,
    check_build_directory,
    compile_cache_rules,
    describe_local_files,
    upload_file,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_verify import (
    StoredObject,
    checksum_to_hex,
    describe_failure,
    object_differences,
    select_build_files,
    stored_object_from_head,
    verify_objects,
)

DEFAULT_RULES = compile_cache_rules(None)
HTML = "text/html; charset=utf-8"
CSS = "text/css; charset=utf-8"


def sha256_base64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def local(path: str, data: bytes, content_type: str, cache_control: str) -> LocalFile:
    return LocalFile(
        path=path,
        source=f"/build/{path}",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        cache_control=cache_control,
    )


def stored_as_published(item: LocalFile, **changes) -> StoredObject:
    fields = {
        "size": item.size,
        "etag": "e",
        "cache_control": item.cache_control,
        "content_type": item.content_type,
        "metadata_sha256": item.sha256,
    }
    fields.update(changes)
    return StoredObject(**fields)


INDEX = local("index.html", b"<html></html>", HTML, CACHE_ENTRY_DOCUMENT)
STYLES = local("assets/index-B7hC2kQe.css", b"body{}", CSS, CACHE_IMMUTABLE)


# ---------------------------------------------------------------------------
# What HeadObject says


def test_checksum_to_hex_takes_only_a_full_object_sha256():
    data = b"hello world"
    assert checksum_to_hex(sha256_base64(data)) == hashlib.sha256(data).hexdigest()
    # A multipart upload's composite checksum is not the object's SHA-256.
    assert checksum_to_hex(sha256_base64(data) + "-3") is None
    assert checksum_to_hex(base64.b64encode(b"short").decode()) is None
    assert checksum_to_hex("not base64!") is None
    assert checksum_to_hex(None) is None
    assert checksum_to_hex("") is None


def test_stored_object_from_head():
    data = b"body{}"
    head = {
        "ContentLength": 6,
        "ETag": '"5f1"',
        "CacheControl": CACHE_IMMUTABLE,
        "ContentType": CSS,
        "Metadata": {"SHA256": hashlib.sha256(data).hexdigest().upper()},
        "ChecksumSHA256": sha256_base64(data),
        "ChecksumType": "FULL_OBJECT",
    }
    stored = stored_object_from_head(head)
    assert stored == StoredObject(
        size=6,
        etag="5f1",
        cache_control=CACHE_IMMUTABLE,
        content_type=CSS,
        checksum_sha256=hashlib.sha256(data).hexdigest(),
        metadata_sha256=hashlib.sha256(data).hexdigest(),
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()

    composite = stored_object_from_head({**head, "ChecksumType": "COMPOSITE"})
    assert composite.checksum_sha256 is None and composite.sha256 == composite.metadata_sha256

    bare = stored_object_from_head({"ContentLength": 6, "ETag": '"5f1"'})
    assert (bare.checksum_sha256, bare.metadata_sha256, bare.sha256) == (None, None, None)


# ---------------------------------------------------------------------------
# Comparing with the build


def test_an_object_as_published_has_no_differences():
    assert object_differences(STYLES, stored_as_published(STYLES)) == []
    assert describe_failure("flora", "assets/index-B7hC2kQe.css", STYLES, stored_as_published(STYLES)) is None
    with_checksum = stored_as_published(STYLES, checksum_sha256=STYLES.sha256)
    assert describe_failure("flora", "x", STYLES, with_checksum) is None
    # The checksum alone vouches for the content too.
    assert describe_failure("flora", "x", STYLES, dataclasses.replace(with_checksum, metadata_sha256=None)) is None


def test_every_difference_is_named_with_what_the_build_has():
    other = hashlib.sha256(b"other").hexdigest()
    stored = stored_as_published(STYLES, size=7, content_type="text/plain", cache_control=None, metadata_sha256=other)
    assert describe_failure("flora", "shop/assets/index-B7hC2kQe.css", STYLES, stored) == (
        "s3://flora/shop/assets/index-B7hC2kQe.css has size 7 (the build has 6), "
        f"Content-Type text/plain (the build has {CSS}), "
        f"Cache-Control (none) (the build has {CACHE_IMMUTABLE}), "
        f"sha256 metadata {other} (the build has {STYLES.sha256})"
    )


def test_the_checksum_s3_computed_is_compared_when_the_metadata_agrees():
    # Someone overwrote the object with other bytes of the same size and kept the metadata.
    other = hashlib.sha256(b"body{x").hexdigest()
    stored = stored_as_published(STYLES, checksum_sha256=other)
    assert object_differences(STYLES, stored) == [f"SHA-256 checksum {other} (the build has {STYLES.sha256})"]


def test_an_object_without_any_sha256_cannot_pass():
    stored = stored_as_published(INDEX, metadata_sha256=None)
    assert object_differences(INDEX, stored) == [
        f"no SHA-256 checksum or sha256 metadata (the build has sha256 {INDEX.sha256})"
    ]


def test_a_missing_object_is_named_with_the_file():
    assert describe_failure("flora", "shop/index.html", INDEX, None) == (
        "s3://flora/shop/index.html does not exist (the build has index.html)"
    )


# ---------------------------------------------------------------------------
# Which files


BUILD = [("assets/a.js", "/b/assets/a.js"), ("flora-logo.png", "/b/flora-logo.png"), ("index.html", "/b/index.html")]


def test_select_build_files_keeps_the_order_asked_for_and_each_once():
    selected = select_build_files(BUILD, ["index.html", "/assets/a.js", "index.html"])
    assert selected == [("index.html", "/b/index.html"), ("assets/a.js", "/b/assets/a.js")]
    assert select_build_files(BUILD, None) == BUILD
    assert select_build_files(BUILD, []) == []


def test_select_build_files_refuses_a_path_the_build_does_not_have():
    with pytest.raises(PublishError) as caught:
        select_build_files(BUILD, ["index.html", "assets/b.js", "robots.txt"])
    assert str(caught.value) == "paths names 2 file(s) the build does not have: assets/b.js, robots.txt"


# ---------------------------------------------------------------------------
# Against a bucket: what s3_publish's upload writes, s3_verify reads back


class FakeS3:
    """put_object stores what S3 stores (size, headers, metadata); head_object answers 404 for a missing key."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.heads: list[dict] = []
        self.lock = threading.Lock()

    def put_object(self, Bucket, Key, Body, aws_retry=False, ChecksumAlgorithm=None, **headers):
        stored = {"Body": Body, "ETag": f'"{hashlib.md5(Body).hexdigest()}"', **headers}
        if ChecksumAlgorithm == "SHA256":
            stored["ChecksumSHA256"] = sha256_base64(Body)
        with self.lock:
            self.objects[Key] = stored
        return {"ETag": stored["ETag"]}

    def head_object(self, Bucket, Key, aws_retry=False, **kwargs):
        with self.lock:
            self.heads.append({"Key": Key, **kwargs})
        if Key not in self.objects:
            raise botocore.exceptions.ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        stored = self.objects[Key]
        head = {
            "ContentLength": len(stored["Body"]),
            "ETag": stored["ETag"],
            "Metadata": stored.get("Metadata", {}),
            "CacheControl": stored.get("CacheControl"),
            "ContentType": stored.get("ContentType"),
        }
        if kwargs.get("ChecksumMode") == "ENABLED" and "ChecksumSHA256" in stored:
            head["ChecksumSHA256"] = stored["ChecksumSHA256"]
        return head


def write_build(root):
    files = {
        "index.html": '<link rel="stylesheet" href="/assets/index-B7hC2kQe.css"><img src="/flora-logo.png">',
        "assets/index-B7hC2kQe.css": "body{}",
        "flora-logo.png": "png",
        "images/Roses.jpg": "jpg",
    }
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return describe_local_files(check_build_directory(str(root)), DEFAULT_RULES)


def published(files, prefix="shop/"):
    client = FakeS3()
    for item in files:
        upload_file(client, "flora", prefix + item.path, item, {})
    return client


def test_a_build_as_s3_publish_uploaded_it_passes_with_one_head_request_per_file(tmp_path):
    files = write_build(tmp_path)
    client = published(files)
    wanted = [item for item in files if item.path != "images/Roses.jpg"]

    checked, failures = verify_objects(client, "flora", "shop/", wanted, workers=3)

    assert failures == []
    assert [(entry["key"], entry["ok"], entry["sha256_from"]) for entry in checked] == [
        ("shop/assets/index-B7hC2kQe.css", True, "metadata"),
        ("shop/flora-logo.png", True, "metadata"),
        ("shop/index.html", True, "metadata"),
    ]
    css = checked[0]
    assert css == {
        "path": "assets/index-B7hC2kQe.css",
        "key": "shop/assets/index-B7hC2kQe.css",
        "exists": True,
        "ok": True,
        "size": 6,
        "cache_control": CACHE_IMMUTABLE,
        "content_type": CSS,
        "sha256": hashlib.sha256(b"body{}").hexdigest(),
        "sha256_from": "metadata",
    }
    # HEAD only, each key once, always asking for the stored checksum.
    assert sorted(head["Key"] for head in client.heads) == [entry["key"] for entry in checked]
    assert {head.get("ChecksumMode") for head in client.heads} == {"ENABLED"}


def test_missing_and_changed_objects_fail_one_line_each(tmp_path):
    files = write_build(tmp_path)
    client = published(files)
    del client.objects["shop/flora-logo.png"]
    client.objects["shop/assets/index-B7hC2kQe.css"]["ContentType"] = "text/plain"
    # Other bytes of the same size under the old metadata, put with a SHA-256 checksum: only S3's checksum tells.
    client.put_object(
        Bucket="flora",
        Key="shop/images/Roses.jpg",
        Body=b"JPG",
        ChecksumAlgorithm="SHA256",
        Metadata={"sha256": hashlib.sha256(b"jpg").hexdigest()},
        ContentType="image/jpeg",
        CacheControl=CACHE_REVALIDATE,
    )

    checked, failures = verify_objects(client, "flora", "shop/", files, workers=4)

    assert failures == [
        f"s3://flora/shop/assets/index-B7hC2kQe.css has Content-Type text/plain (the build has {CSS})",
        "s3://flora/shop/flora-logo.png does not exist (the build has flora-logo.png)",
        (
            f"s3://flora/shop/images/Roses.jpg has SHA-256 checksum {hashlib.sha256(b'JPG').hexdigest()} "
            f"(the build has {hashlib.sha256(b'jpg').hexdigest()})"
        ),
    ]
    assert [entry["ok"] for entry in checked] == [False, False, False, True]
    assert checked[1] == {"path": "flora-logo.png", "key": "shop/flora-logo.png", "exists": False, "ok": False}
    assert checked[2]["sha256_from"] == "checksum"


# ---------------------------------------------------------------------------
# The module's main()


@pytest.fixture
def module(monkeypatch, capsys):
    """Run the module's main() against a fake client, wrapped in the module's own retry decorator."""
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

    from ansible_collections.flora.deploy.plugins.modules import s3_verify

    clients = []

    def run(args, client):
        def make_client(self, service, retry_decorator=None, **kwargs):
            assert service == "s3"
            clients.append(service)
            return RetryingBotoClientWrapper(client, retry_decorator)

        monkeypatch.setattr(AnsibleAWSModule, "client", make_client)
        base = {"_ansible_check_mode": False, "_ansible_diff": False}
        base.update(args)
        with patch_module_args(base), pytest.raises(SystemExit):
            s3_verify.main()
        output = json.loads(capsys.readouterr().out)
        output["_clients"] = len(clients)
        return output

    return run


def test_module_passes_on_the_published_build_and_changes_nothing(module, tmp_path):
    files = write_build(tmp_path / "dist")
    client = published(files, prefix="")
    result = module({"bucket": "flora", "src": str(tmp_path / "dist"), "paths": ["index.html"]}, client)
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert [entry["key"] for entry in result["checked"]] == ["index.html"]
    assert result["failures"] == []


def test_module_fails_naming_each_object(module, tmp_path):
    files = write_build(tmp_path / "dist")
    client = published(files, prefix="shop/")
    del client.objects["shop/index.html"]
    result = module({"bucket": "flora", "src": str(tmp_path / "dist"), "prefix": "/shop/"}, client)
    assert result["failed"] is True
    assert result["msg"] == (
        f"1 of 4 objects in s3://flora/shop/ are not the build in {tmp_path / 'dist'}: "
        "s3://flora/shop/index.html does not exist (the build has index.html)"
    )
    assert result["failures"] == ["s3://flora/shop/index.html does not exist (the build has index.html)"]


def test_module_refuses_a_path_outside_the_build_before_any_request(module, tmp_path):
    write_build(tmp_path / "dist")
    client = FakeS3()
    result = module({"bucket": "flora", "src": str(tmp_path / "dist"), "paths": ["index.html", "app.js"]}, client)
    assert result["failed"] is True
    assert result["msg"] == "paths names 1 file(s) the build does not have: app.js"
    assert result["_clients"] == 0 and client.heads == []
