from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    CACHE_ENTRY_DOCUMENT,
    CACHE_IMMUTABLE,
    CACHE_REVALIDATE,
    BuildDirectoryError,
    ListedObject,
    LocalFile,
    Manifest,
    ManifestError,
    ObjectRecord,
    PublishError,
    RemoteState,
    cache_control_for,
    check_build_directory,
    compile_cache_rules,
    content_type_for,
    describe_local_files,
    execute_plan,
    format_timestamp,
    is_immutable,
    manifest_key_for,
    map_in_pool,
    next_build_timestamp,
    normalise_content_type_overrides,
    normalise_prefix,
    plan_diff,
    plan_publish,
    plan_result,
    publish_summary,
    read_remote_state,
    size_text,
    split_listing,
    upload_arguments,
)

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
DEFAULT_RULES = compile_cache_rules(None)


def local(path: str, content: str = "", rules=None) -> LocalFile:
    data = (content or f"content of {path}").encode()
    return LocalFile(
        path=path,
        source=f"/build/{path}",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type_for(path),
        cache_control=cache_control_for(path, rules or DEFAULT_RULES),
    )


def etag_of(item: LocalFile) -> str:
    return "e-" + item.sha256[:10]


def record_of(item: LocalFile, etag: str | None = None) -> ObjectRecord:
    return ObjectRecord(
        size=item.size,
        etag=etag or etag_of(item),
        sha256=item.sha256,
        cache_control=item.cache_control,
        content_type=item.content_type,
    )


def published(prefix: str, builds: list[tuple[str, list[LocalFile]]]) -> RemoteState:
    """The bucket after publishing each (build_id, files) in turn, all objects still present."""
    listing, manifests = {}, {}
    for build_id, files in builds:
        for item in files:
            listing[prefix + item.path] = ListedObject(prefix + item.path, item.size, etag_of(item))
        objects = {item.path: record_of(item) for item in files}
        manifests[manifest_key_for(prefix, build_id)] = Manifest(build_id=build_id, objects=objects)
    return RemoteState(listing=listing, manifest_keys=sorted(manifests), manifests=manifests)


def build_v1() -> list[LocalFile]:
    return [
        local("index.html", '<script src="/assets/index-AbCd1234.js"></script>'),
        local("assets/index-AbCd1234.js", "console.log(1)"),
        local("assets/index-EfGh5678.css", "body{}"),
        local("flora-logo.png", "PNG"),
        local("images/Roses.jpg", "JPG"),
    ]


def build_v2() -> list[LocalFile]:
    files = [f for f in build_v1() if f.path not in ("index.html", "assets/index-AbCd1234.js")]
    return files + [
        local("index.html", '<script src="/assets/index-XyZw9876.js"></script>'),
        local("assets/index-XyZw9876.js", "console.log(2)"),
    ]


# ---------------------------------------------------------------------------
# Naming and rules


@pytest.mark.parametrize(
    "given, expected",
    [
        (None, ""),
        ("", ""),
        ("/", ""),
        ("//", ""),
        ("site", "site/"),
        ("/site", "site/"),
        ("site/", "site/"),
        ("/site//", "site/"),
        ("a/b", "a/b/"),
    ],
)
def test_normalise_prefix(given, expected):
    assert normalise_prefix(given) == expected


@pytest.mark.parametrize(
    "path, expected",
    [
        ("index.html", CACHE_ENTRY_DOCUMENT),
        ("about/index.html", CACHE_ENTRY_DOCUMENT),
        ("assets/index-AbCd1234.js", CACHE_IMMUTABLE),
        ("assets/index-EfGh5678.css", CACHE_IMMUTABLE),
        ("assets/index-AbCd1234.js.map", CACHE_IMMUTABLE),
        ("assets/vendor.react-a_B-c9d0.js", CACHE_IMMUTABLE),
        ("assets/Roses-12345678.webp", CACHE_IMMUTABLE),
        ("app/assets/index-AbCd1234.js", CACHE_IMMUTABLE),
        ("flora-logo.png", CACHE_REVALIDATE),
        ("images/Roses.jpg", CACHE_REVALIDATE),
        ("favicon.ico", CACHE_REVALIDATE),
        ("assets/index.js", CACHE_REVALIDATE),
        ("assets/my-logotype.png", CACHE_REVALIDATE),
        ("assets/index-AbCd123.js", CACHE_REVALIDATE),
        ("assets/index-AbCd1234", CACHE_REVALIDATE),
        ("assets/sub/index-AbCd1234.js", CACHE_REVALIDATE),
        ("images/index-AbCd1234.js", CACHE_REVALIDATE),
    ],
)
def test_default_cache_rules(path, expected):
    assert cache_control_for(path, DEFAULT_RULES) == expected


def test_user_cache_rules_come_first_and_first_match_wins():
    rules = compile_cache_rules(
        [
            {"glob": "fonts/*", "cache_control": "public,max-age=86400"},
            {"regex": r"^robots\.txt$", "cache_control": "public,max-age=3600"},
            {"glob": "fonts/special.woff2", "cache_control": "never reached"},
            {"glob": "*.html", "regex": None, "cache_control": "no-cache"},
        ]
    )
    assert cache_control_for("fonts/special.woff2", rules) == "public,max-age=86400"
    assert cache_control_for("robots.txt", rules) == "public,max-age=3600"
    assert cache_control_for("static/robots.txt", rules) == CACHE_REVALIDATE
    assert cache_control_for("index.html", rules) == "no-cache"
    assert cache_control_for("assets/index-AbCd1234.js", rules) == CACHE_IMMUTABLE


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"cache_control": "x"}, "exactly one of glob or regex"),
        ({"glob": "*", "regex": ".*", "cache_control": "x"}, "exactly one of glob or regex"),
        ({"regex": "([a-z", "cache_control": "x"}, "invalid regex"),
    ],
)
def test_bad_cache_rules_are_rejected(rule, message):
    with pytest.raises(PublishError, match=message):
        compile_cache_rules([rule])


def test_immutable_is_a_directive_not_a_substring():
    assert is_immutable(CACHE_IMMUTABLE)
    assert is_immutable("public, Immutable ,max-age=1")
    assert not is_immutable(CACHE_REVALIDATE)
    assert not is_immutable("x-not-immutable")


@pytest.mark.parametrize(
    "path, expected",
    [
        ("index.html", "text/html; charset=utf-8"),
        ("assets/index-AbCd1234.js", "text/javascript; charset=utf-8"),
        ("worker.mjs", "text/javascript; charset=utf-8"),
        ("assets/index-EfGh5678.css", "text/css; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
        ("images/Roses.webp", "image/webp"),
        ("fonts/Inter.woff2", "font/woff2"),
        ("data.json", "application/json"),
        ("assets/index-AbCd1234.js.map", "application/json"),
        ("favicon.ico", "image/x-icon"),
        ("flora-logo.png", "image/png"),
        ("images/Roses.jpg", "image/jpeg"),
        ("images/ROSES.JPEG", "image/jpeg"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("site.webmanifest", "application/manifest+json"),
        ("sitemap.xml", "application/xml"),
        ("terms.pdf", "application/pdf"),
        ("archive.tar.gz", "application/octet-stream"),
        ("LICENSE", "application/octet-stream"),
        ("blob.flora-unknown", "application/octet-stream"),
    ],
)
def test_content_types(path, expected):
    assert content_type_for(path) == expected


def test_content_type_overrides_by_extension():
    overrides = normalise_content_type_overrides({"JS": "application/javascript", ".br": "application/x-brotli"})
    assert overrides == {".js": "application/javascript", ".br": "application/x-brotli"}
    assert content_type_for("app.js", overrides) == "application/javascript"
    assert content_type_for("app.js.br", overrides) == "application/x-brotli"
    assert content_type_for("app.css", overrides) == "text/css; charset=utf-8"


def test_build_timestamps_always_sort_after_the_latest_build():
    latest = f"{format_timestamp(NOW)}-abc"
    assert next_build_timestamp(NOW + datetime.timedelta(seconds=1), latest) == NOW + datetime.timedelta(seconds=1)
    behind = next_build_timestamp(NOW - datetime.timedelta(hours=1), latest)
    assert behind == NOW + datetime.timedelta(microseconds=1)
    assert format_timestamp(behind) > format_timestamp(NOW)
    assert next_build_timestamp(NOW, None) == NOW
    assert next_build_timestamp(NOW, "not-a-timestamp") == NOW


def test_upload_arguments_set_no_acl_by_default():
    assert upload_arguments(None, None, None) == {}
    assert upload_arguments("public-read", "aws:kms", "alias/k") == {
        "ACL": "public-read",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/k",
    }


# ---------------------------------------------------------------------------
# Local build


def write(root, path: str, content: str = "x"):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return target


def test_build_directory_must_exist(tmp_path):
    with pytest.raises(BuildDirectoryError, match="does not exist"):
        check_build_directory(str(tmp_path / "dist"))
    write(tmp_path, "file")
    with pytest.raises(BuildDirectoryError, match="is not a directory"):
        check_build_directory(str(tmp_path / "file"))


def test_build_directory_must_have_files(tmp_path):
    (tmp_path / "dist" / "assets").mkdir(parents=True)
    with pytest.raises(BuildDirectoryError, match="contains no files"):
        check_build_directory(str(tmp_path / "dist"))


def test_build_directory_must_have_index_html_at_its_top(tmp_path):
    write(tmp_path, "dist/about/index.html")
    with pytest.raises(BuildDirectoryError, match="has no index.html"):
        check_build_directory(str(tmp_path / "dist"))


def test_build_directory_must_not_hold_publish_manifests(tmp_path):
    write(tmp_path, "dist/index.html")
    write(tmp_path, "dist/.publish/manifests/x.json")
    with pytest.raises(BuildDirectoryError, match="reserved"):
        check_build_directory(str(tmp_path / "dist"))


def test_build_files_include_hidden_files_and_skip_links_outside(tmp_path):
    dist = tmp_path / "dist"
    write(dist, "index.html")
    write(dist, ".well-known/security.txt")
    write(dist, "assets/index-AbCd1234.js")
    write(tmp_path, "secret.txt")
    write(tmp_path, "elsewhere/other.js")
    os.symlink(tmp_path / "secret.txt", dist / "secret.txt")
    os.symlink(dist / "assets" / "index-AbCd1234.js", dist / "main.js")
    os.symlink(tmp_path / "elsewhere", dist / "linked-dir")
    os.symlink(tmp_path / "missing", dist / "dangling")
    paths = [path for path, source in check_build_directory(str(dist))]
    assert paths == [".well-known/security.txt", "assets/index-AbCd1234.js", "index.html", "main.js"]


def test_describe_local_files_hashes_content(tmp_path):
    write(tmp_path, "index.html", "<html></html>")
    files = describe_local_files(check_build_directory(str(tmp_path)), DEFAULT_RULES)
    assert files == [
        LocalFile(
            path="index.html",
            source=str(tmp_path / "index.html"),
            size=13,
            sha256=hashlib.sha256(b"<html></html>").hexdigest(),
            content_type="text/html; charset=utf-8",
            cache_control=CACHE_ENTRY_DOCUMENT,
        )
    ]


# ---------------------------------------------------------------------------
# Remote state


def test_split_listing_separates_manifests_and_ignores_bookkeeping():
    contents = [
        {"Key": "site/index.html", "Size": 3, "ETag": '"abc"'},
        {"Key": "site/.publish/manifests/2-b.json", "Size": 9, "ETag": '"m2"'},
        {"Key": "site/.publish/manifests/1-a.json", "Size": 9, "ETag": '"m1"'},
        {"Key": "site/.publish/lock", "Size": 1, "ETag": '"l"'},
        {"Key": "site/images/", "Size": 0, "ETag": '"d"'},
    ]
    listing, manifest_keys = split_listing(contents, "site/")
    assert listing == {"site/index.html": ListedObject("site/index.html", 3, "abc")}
    assert manifest_keys == ["site/.publish/manifests/1-a.json", "site/.publish/manifests/2-b.json"]


def test_manifest_round_trip_and_bad_manifest():
    manifest = Manifest(build_id="b1", objects={"index.html": record_of(local("index.html"))})
    assert Manifest.from_json(manifest.to_json(), "k") == manifest
    labelled = Manifest(build_id="b2", objects={}, source={"commit": "3f2a9c1"})
    assert Manifest.from_json(labelled.to_json(), "k").source == {"commit": "3f2a9c1"}
    with pytest.raises(ManifestError, match="k.json is not a valid publish manifest"):
        Manifest.from_json("{not json", "k.json")
    with pytest.raises(ManifestError):
        Manifest.from_json(json.dumps({"objects": {"a": {"size": 1}}}), "k.json")


# ---------------------------------------------------------------------------
# Plan


def plan(files, remote, keep_previous=2, prefix="", entry_documents=("*.html",)):
    return plan_publish(prefix, files, remote, keep_previous, list(entry_documents), NOW)


def test_first_publish_uploads_everything_with_entry_documents_last():
    result = plan(build_v1(), RemoteState(listing={}, manifest_keys=[]), prefix="site/")
    assert [f.path for f in result.asset_uploads] == [
        "assets/index-AbCd1234.js",
        "assets/index-EfGh5678.css",
        "flora-logo.png",
        "images/Roses.jpg",
    ]
    assert [f.path for f in result.entry_uploads] == ["index.html"]
    assert result.changed_keys[-1] == "site/index.html"
    assert result.changed and result.new_manifest and result.adopted_manifest is None
    assert result.manifest_key == f"site/.publish/manifests/{result.build_id}.json"
    assert result.build_id.startswith("20250301T120000.000000Z-")
    assert result.deletions == [] and result.obsolete_manifest_keys == []
    assert result.invalidation_paths == ["/flora-logo.png", "/images/Roses.jpg", "/index.html"]


def test_identical_rebuild_changes_nothing():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    result = plan(build_v1(), remote)
    assert not result.changed
    assert result.uploads == [] and len(result.unchanged) == 5
    assert not result.new_manifest
    assert result.build_id == "20250101T000000.000000Z-aaa"
    assert result.manifest_key == ".publish/manifests/20250101T000000.000000Z-aaa.json"
    assert plan_result(result)["changed"] is False


def test_a_new_source_with_identical_content_writes_only_a_manifest():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    first = plan_publish("", build_v1(), remote, 2, ["*.html"], NOW, source={"commit": "c1"})
    assert first.changed and first.new_manifest
    assert first.uploads == [] and first.deletions == [] and first.invalidation_paths == []
    assert first.manifest().source == {"commit": "c1"}
    assert plan_result(first)["source"] == {"commit": "c1"} and plan_result(first)["previous_source"] is None

    manifest = first.manifest()
    remote.manifest_keys.append(first.manifest_key)
    remote.manifests[first.manifest_key] = Manifest.from_json(manifest.to_json(), first.manifest_key)
    again = plan_publish("", build_v1(), remote, 2, ["*.html"], NOW, source={"commit": "c1"})
    assert not again.changed
    assert plan_result(again)["source"] == {"commit": "c1"}
    # Without a source the recorded one stays.
    unlabelled = plan_publish("", build_v1(), remote, 2, ["*.html"], NOW)
    assert not unlabelled.changed and plan_result(unlabelled)["source"] == {"commit": "c1"}


def test_one_component_change_uploads_only_the_new_asset_and_the_entry_document():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    result = plan(build_v2(), remote)
    assert result.changed_keys == ["assets/index-XyZw9876.js", "index.html"]
    assert result.invalidation_paths == ["/index.html"]
    assert result.deletions == []
    assert result.retained_keys == ["assets/index-AbCd1234.js"]
    summary = plan_result(result)
    assert (summary["uploaded"], summary["unchanged"], summary["deleted"], summary["retained"]) == (2, 3, 0, 1)
    assert summary["bytes_uploaded"] == sum(f.size for f in result.uploads)


def summaries(result) -> tuple[str, str]:
    """What the publish says when it runs, and in check mode."""
    return publish_summary(result, "s3://bucket/", False), publish_summary(result, "s3://bucket/", True)


def test_the_summary_names_the_build_and_counts_what_was_uploaded_left_and_deleted():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    result = plan_publish("", build_v2(), remote, 0, ["*.html"], NOW, source={"commit": "c2"})
    size = size_text(sum(f.size for f in result.uploads))
    build = f"{result.build_id} (commit c2)"
    assert summaries(result) == (
        f"Published {build} to s3://bucket/: 2 files uploaded ({size}), 3 unchanged, 1 deleted",
        f"Would publish {build} to s3://bucket/, uploading 2 files ({size}); 3 unchanged, 1 would be deleted",
    )


def test_the_summary_of_a_new_source_alone_says_nothing_was_uploaded():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    result = plan_publish("", build_v1(), remote, 2, ["*.html"], NOW)
    assert summaries(result) == ("20250101T000000.000000Z-aaa is live in s3://bucket/ already: nothing to publish",) * 2
    relabelled = plan_publish("", build_v1(), remote, 2, ["*.html"], NOW, source={"commit": "c1"})
    assert publish_summary(relabelled, "s3://bucket/", False) == (
        f"Published {relabelled.build_id} (commit c1) to s3://bucket/: 0 files uploaded, 5 unchanged, 0 deleted"
    )


@pytest.mark.parametrize(
    "size, text",
    [
        (1, "1 byte"),
        (999, "999 bytes"),
        (1000, "1.0 kB"),
        (52_300, "52.3 kB"),
        (999_960, "1.0 MB"),
        (53_100_000, "53.1 MB"),
        (1_500_000_000, "1.5 GB"),
        (2_000_000_000_000, "2000.0 GB"),
    ],
)
def test_size_text(size, text):
    assert size_text(size) == text


def test_changed_headers_upload_again_without_content_change():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    rules = compile_cache_rules([{"glob": "images/*", "cache_control": "public,max-age=3600"}])
    files = [local(f.path, "JPG", rules) if f.path == "images/Roses.jpg" else f for f in build_v1()]
    result = plan(files, remote)
    assert result.changed_keys == ["images/Roses.jpg"]


def test_object_changed_behind_our_back_is_uploaded_again():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    remote.listing["flora-logo.png"] = ListedObject("flora-logo.png", 3, "someone-else")
    result = plan(build_v1(), remote)
    assert result.changed_keys == ["flora-logo.png"]
    assert result.new_manifest


def test_missing_object_is_uploaded_again():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    del remote.listing["images/Roses.jpg"]
    assert plan(build_v1(), remote).changed_keys == ["images/Roses.jpg"]


def test_interrupted_publish_resumes_from_head_records():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    new_js = local("assets/index-XyZw9876.js", "console.log(2)")
    remote.listing[new_js.path] = ListedObject(new_js.path, new_js.size, "uploaded-before-interruption")
    remote.head_records[new_js.path] = record_of(new_js, etag="uploaded-before-interruption")
    result = plan(build_v2(), remote)
    assert result.changed_keys == ["index.html"]
    assert result.new_manifest
    assert result.manifest().objects[new_js.path].etag == "uploaded-before-interruption"


def test_interrupted_publish_still_invalidates_what_it_uploaded():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    new_js = local("assets/index-XyZw9876.js", "console.log(2)")
    new_logo = local("flora-logo.png", "PNG v2")
    for item in (new_js, new_logo):
        remote.listing[item.path] = ListedObject(item.path, item.size, "uploaded-before-interruption")
        remote.head_records[item.path] = record_of(item, etag="uploaded-before-interruption")
    files = [f for f in build_v2() if f.path != "flora-logo.png"] + [new_logo]
    result = plan(files, remote)
    assert result.changed_keys == ["index.html"]
    # The CDN may still hold the previous build's logo: the upload happened in the interrupted run.
    assert result.invalidation_paths == ["/flora-logo.png", "/index.html"]


def test_resumed_first_publish_invalidates_every_file_that_is_not_content_hashed():
    remote = RemoteState(listing={}, manifest_keys=[])
    logo = local("flora-logo.png", "PNG")
    remote.listing[logo.path] = ListedObject(logo.path, logo.size, "uploaded-before-interruption")
    remote.head_records[logo.path] = record_of(logo, etag="uploaded-before-interruption")
    result = plan(build_v1(), remote)
    assert "flora-logo.png" not in result.changed_keys
    assert result.invalidation_paths == ["/flora-logo.png", "/images/Roses.jpg", "/index.html"]


def test_head_record_with_other_content_is_uploaded():
    remote = RemoteState(listing={"index.html": ListedObject("index.html", 4, "old")}, manifest_keys=[])
    remote.head_records["index.html"] = ObjectRecord(size=4, etag="old", sha256=None, cache_control=CACHE_IMMUTABLE)
    files = [local("index.html")]
    assert plan(files, remote).changed_keys == ["index.html"]


def test_retention_keeps_previous_builds_and_deletes_older_ones():
    v3 = [f for f in build_v2() if f.path != "assets/index-XyZw9876.js"] + [local("assets/index-Qr5tUv12.js", "3")]
    remote = published(
        "site/",
        [("20250101T000000.000000Z-aaa", build_v1()), ("20250102T000000.000000Z-bbb", build_v2())],
    )
    kept = plan(v3, remote, prefix="site/")
    assert kept.deletions == [] and kept.obsolete_manifest_keys == []
    assert kept.retained_keys == ["site/assets/index-AbCd1234.js", "site/assets/index-XyZw9876.js"]

    remote = published(
        "site/",
        [
            ("20250101T000000.000000Z-aaa", build_v1()),
            ("20250102T000000.000000Z-bbb", build_v2()),
            ("20250103T000000.000000Z-ccc", v3),
        ],
    )
    v4 = [f for f in v3 if f.path != "assets/index-EfGh5678.css"] + [local("assets/index-Zz9Yy8Xx.css", "4")]
    result = plan(v4, remote, prefix="site/")
    assert result.deletions == ["site/assets/index-AbCd1234.js"]
    assert result.obsolete_manifest_keys == ["site/.publish/manifests/20250101T000000.000000Z-aaa.json"]
    assert result.retained_keys == ["site/assets/index-EfGh5678.css", "site/assets/index-XyZw9876.js"]


def test_keep_previous_zero_keeps_only_the_current_build():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    result = plan(build_v2(), remote, keep_previous=0)
    assert result.deletions == ["assets/index-AbCd1234.js"]
    assert result.obsolete_manifest_keys == [".publish/manifests/20250101T000000.000000Z-aaa.json"]
    assert result.retained_keys == []


def test_objects_no_manifest_references_are_deleted_after_the_first_publish():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    remote.listing["stray.txt"] = ListedObject("stray.txt", 1, "x")
    assert plan(build_v1(), remote).deletions == ["stray.txt"]


def test_identical_rebuild_still_prunes_builds_beyond_keep_previous():
    remote = published(
        "",
        [("20250101T000000.000000Z-aaa", build_v1()), ("20250102T000000.000000Z-bbb", build_v2())],
    )
    result = plan(build_v2(), remote, keep_previous=0)
    assert not result.new_manifest
    assert result.deletions == ["assets/index-AbCd1234.js"]
    assert result.obsolete_manifest_keys == [".publish/manifests/20250101T000000.000000Z-aaa.json"]
    assert result.changed
    live = "20250102T000000.000000Z-bbb is live in s3://bucket/ already"
    assert summaries(result) == (
        f"{live}; deleted 1 object no kept build needs and 1 manifest of builds no longer kept",
        f"{live}; would delete 1 object no kept build needs and 1 manifest of builds no longer kept",
    )
    # Copies of overwritten objects that no kept build needs are counted too, and what is none is left out.
    remote.stored = {"f" * 64, "e" * 64}
    copies_only = plan(build_v2(), remote, keep_previous=1)
    assert copies_only.deletions == [] and copies_only.obsolete_manifest_keys == []
    assert publish_summary(copies_only, "s3://bucket/", False) == f"{live}; deleted 2 stored copies no kept build needs"


def test_first_publish_over_unmanaged_objects_adopts_them_as_the_previous_build():
    old_files = {"index.html": "old index", "assets/index-Old12345.js": "old js", "favicon.ico": "ico"}
    listing = {key: ListedObject(key, len(body), "etag-" + key) for key, body in old_files.items()}
    remote = RemoteState(listing=listing, manifest_keys=[])
    result = plan(build_v1(), remote)
    adopted = result.adopted_manifest
    assert adopted is not None and adopted.adopted
    assert sorted(adopted.objects) == ["assets/index-Old12345.js", "favicon.ico"]
    assert adopted.objects["favicon.ico"] == ObjectRecord(size=3, etag="etag-favicon.ico")
    assert manifest_key_for("", adopted.build_id) < result.manifest_key
    assert result.deletions == []
    assert result.retained_keys == ["assets/index-Old12345.js", "favicon.ico"]
    assert "index.html" in result.changed_keys

    with_adopted = published("", [(result.build_id, build_v1())])
    with_adopted.manifests[manifest_key_for("", adopted.build_id)] = adopted
    with_adopted.manifest_keys = sorted(with_adopted.manifests)
    with_adopted.listing.update({key: listing[key] for key in adopted.objects})
    v2 = plan(build_v2(), with_adopted, keep_previous=1)
    assert v2.deletions == ["assets/index-Old12345.js", "favicon.ico"]
    assert v2.obsolete_manifest_keys == [manifest_key_for("", adopted.build_id)]


def test_adoption_with_keep_previous_zero_deletes_at_once_without_a_manifest():
    listing = {"old.js": ListedObject("old.js", 1, "e")}
    result = plan(build_v1(), RemoteState(listing=listing, manifest_keys=[]), keep_previous=0)
    assert result.adopted_manifest is None
    assert result.obsolete_manifest_keys == []
    assert result.deletions == ["old.js"]


def test_custom_entry_documents_go_last():
    files = build_v1() + [local("sw.js", "sw")]
    result = plan(files, RemoteState(listing={}, manifest_keys=[]), entry_documents=["*.html", "sw.js"])
    assert [f.path for f in result.entry_uploads] == ["index.html", "sw.js"]
    assert result.changed_keys[-2:] == ["index.html", "sw.js"]


def test_diff_shows_what_changes():
    remote = published("", [("20250101T000000.000000Z-aaa", build_v1())])
    remote.listing["stray.txt"] = ListedObject("stray.txt", 1, "x")
    result = plan(build_v2(), remote, keep_previous=0)
    diff = plan_diff(result, remote, "flora-site")
    new_index = next(f for f in build_v2() if f.path == "index.html")
    assert diff["before_header"] == diff["after_header"] == "s3://flora-site/"
    assert "stray.txt (not published by s3_publish)\n" in diff["before"]
    assert "stray.txt" not in diff["after"]
    assert f"index.html sha256:{new_index.sha256[:12]} {CACHE_ENTRY_DOCUMENT}\n" in diff["after"]
    assert "assets/index-AbCd1234.js" in diff["before"] and "assets/index-AbCd1234.js" not in diff["after"]
    assert f"{result.manifest_key} (manifest)" in diff["after"]
    assert ".publish/manifests/20250101T000000.000000Z-aaa.json (manifest)" not in diff["after"]


# ---------------------------------------------------------------------------
# S3 calls, against a stand-in client


class FakeS3:
    """Just enough of S3 for the publish calls; records every request in order."""

    def __init__(self, objects: dict[str, bytes] | None = None):
        self.objects: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        for key, body in (objects or {}).items():
            self.store(key, body)

    def store(self, key, body, **headers):
        self.objects[key] = {"Body": body, "ETag": f'"{hashlib.md5(body).hexdigest()}"', **headers}
        return self.objects[key]["ETag"]

    def record(self, operation, key=""):
        with self.lock:
            self.calls.append((operation, key))

    def get_paginator(self, name):
        fake = self

        class Paginator:
            def paginate(self, Bucket, Prefix):
                fake.record("list_objects_v2", Prefix)
                contents = [
                    {"Key": key, "Size": len(obj["Body"]), "ETag": obj["ETag"]}
                    for key, obj in sorted(fake.objects.items())
                    if key.startswith(Prefix)
                ]

                class Result:
                    def build_full_result(self):
                        return {"Contents": contents} if contents else {}

                return Result()

        assert name == "list_objects_v2"
        return Paginator()

    def get_object(self, Bucket, Key, aws_retry=False):
        self.record("get_object", Key)
        body = self.objects[Key]["Body"]

        class Stream:
            def read(self):
                return body

        return {"Body": Stream()}

    def head_object(self, Bucket, Key, aws_retry=False):
        self.record("head_object", Key)
        obj = self.objects[Key]
        return {
            "ContentLength": len(obj["Body"]),
            "ETag": obj["ETag"],
            "Metadata": obj.get("Metadata", {}),
            "CacheControl": obj.get("CacheControl"),
            "ContentType": obj.get("ContentType"),
        }

    def put_object(self, Bucket, Key, Body, aws_retry=False, **headers):
        time.sleep(0.01)
        self.record("put_object", Key)
        with self.lock:
            return {"ETag": self.store(Key, Body, **headers)}

    def copy_object(self, Bucket, Key, CopySource, MetadataDirective, aws_retry=False, **headers):
        self.record("copy_object", Key)
        with self.lock:
            source = dict(self.objects[CopySource["Key"]])
            body = source.pop("Body")
            source.pop("ETag")
            if MetadataDirective == "REPLACE":
                source = {name: value for name, value in source.items() if name == "ServerSideEncryption"}
            etag = self.store(Key, body, **{**source, **headers})
        return {"CopyObjectResult": {"ETag": etag}}

    def delete_objects(self, Bucket, Delete, aws_retry=False):
        for item in Delete["Objects"]:
            self.record("delete_object", item["Key"])
            del self.objects[item["Key"]]
        return {}


def publish(client, src, keep_previous=2, now=NOW, extra=None):
    files = describe_local_files(check_build_directory(str(src)), DEFAULT_RULES)
    remote = read_remote_state(client, "bucket", "", files, keep_previous, workers=4)
    result = plan_publish("", files, remote, keep_previous, ["*.html"], now)
    execute_plan(client, "bucket", result, extra or {}, workers=4)
    return result


def write_build(root, js_hash="AbCd1234", js="console.log(1)"):
    write(root, "index.html", f'<script src="/assets/index-{js_hash}.js"></script>')
    write(root, f"assets/index-{js_hash}.js", js)
    write(root, "assets/index-EfGh5678.css", "body{}")
    write(root, "flora-logo.png", "PNG")
    write(root, "images/Roses.jpg", "JPG")


def test_upload_order_headers_and_manifest(tmp_path):
    write_build(tmp_path)
    client = FakeS3()
    result = publish(client, tmp_path, extra={"ServerSideEncryption": "AES256"})
    puts = [key for operation, key in client.calls if operation == "put_object"]
    assert puts[-2:] == ["index.html", result.manifest_key]
    assert sorted(puts[:-2]) == sorted(f.path for f in result.asset_uploads)
    js = client.objects["assets/index-AbCd1234.js"]
    assert js["CacheControl"] == CACHE_IMMUTABLE
    assert js["ContentType"] == "text/javascript; charset=utf-8"
    assert js["Metadata"] == {"sha256": hashlib.sha256(b"console.log(1)").hexdigest()}
    assert js["ServerSideEncryption"] == "AES256" and "ACL" not in js
    manifest = json.loads(client.objects[result.manifest_key]["Body"])
    assert manifest["objects"]["assets/index-AbCd1234.js"]["etag"] == js["ETag"].strip('"')
    assert set(manifest["objects"]) == {f.path for f in result.files}


def test_unchanged_rebuild_costs_one_listing_and_the_manifest_reads(tmp_path):
    builds = [("AbCd1234", "1"), ("XyZw9876", "2"), ("Qr5tUv12", "3"), ("Zz9Yy8Xx", "4")]
    client = FakeS3()
    for number, (js_hash, js) in enumerate(builds):
        dist = tmp_path / f"v{number}"
        write_build(dist, js_hash, js)
        publish(client, dist, now=NOW + datetime.timedelta(minutes=number))
    client.calls.clear()
    publish(client, tmp_path / "v3", now=NOW + datetime.timedelta(hours=1))
    operations = [operation for operation, key in client.calls]
    assert operations == ["list_objects_v2", "get_object", "get_object", "get_object"]
    assert "assets/index-AbCd1234.js" not in client.objects
    assert "assets/index-XyZw9876.js" in client.objects
    assert sum(key.startswith(".publish/manifests/") for key in client.objects) == 3


def test_interrupted_upload_is_resumed_with_head_requests(tmp_path):
    write_build(tmp_path)
    client = FakeS3()
    files = describe_local_files(check_build_directory(str(tmp_path)), DEFAULT_RULES)
    first = plan_publish("", files, read_remote_state(client, "b", "", files, 2, 4), 2, ["*.html"], NOW)
    for item in first.asset_uploads[:2]:
        client.put_object(
            Bucket="b",
            Key=item.path,
            Body=Path(item.source).read_bytes(),
            ContentType=item.content_type,
            CacheControl=item.cache_control,
            Metadata={"sha256": item.sha256},
        )
    client.calls.clear()
    result = publish(client, tmp_path)
    heads = sorted(key for operation, key in client.calls if operation == "head_object")
    assert heads == sorted(f.path for f in first.asset_uploads[:2])
    assert len(result.uploads) == 3 and result.adopted_manifest is None


def test_pool_is_bounded_and_keeps_order():
    running, peak, lock = [0], [0], threading.Lock()
    # The first three calls wait for each other: they get through only when three run at once.
    together = threading.Barrier(3, timeout=30)

    def work(number):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if number < 3:
            together.wait()
        with lock:
            running[0] -= 1
        return number * 2

    assert map_in_pool(work, list(range(20)), workers=3) == [n * 2 for n in range(20)]
    assert peak[0] == 3
    assert map_in_pool(work, [], workers=3) == []


def test_pool_raises_the_first_failure():
    def work(number):
        if number == 2:
            raise ValueError("boom")
        return number

    with pytest.raises(ValueError, match="boom"):
        map_in_pool(work, [1, 2, 3], workers=2)
