from __future__ import annotations

import dataclasses
import datetime
import hashlib

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    ListedObject,
    Manifest,
    RemoteState,
    manifest_key_for,
    plan_publish,
    stored_copy_key,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_rollback import (
    RollbackError,
    files_to_restore,
    plan_rollback,
    referenced_by_index,
    rollback_summary,
    select_target,
)
from tests.unit.plugins.module_utils.test_s3_publish import (
    NOW,
    FakeS3,
    build_v1,
    build_v2,
    publish,
    published,
    record_of,
    write_build,
)

LOCATION = "s3://bucket/"


def with_sources(remote: RemoteState, *commits: str | None) -> RemoteState:
    """The manifests of remote (oldest first) labelled with these commits."""
    for key, commit in zip(remote.manifest_keys, commits):
        remote.manifests[key].source = {"commit": commit} if commit else None
    return remote


def two_builds(stored: set[str] | None = None) -> RemoteState:
    """v1 then v2 published: the listing shows v2's index.html and v1's chunk, which v2 still keeps."""
    remote = with_sources(
        published("", [("20250301T100000.000000Z-aaa", build_v1()), ("20250301T110000.000000Z-bbb", build_v2())]),
        "1" * 40,
        "2" * 40,
    )
    remote.stored = stored if stored is not None else {item.sha256 for item in build_v1() if item.path == "index.html"}
    return remote


def index_of(files) -> str:
    return next(item.sha256 for item in files if item.path == "index.html")


def test_previous_build_is_the_one_before_the_live_one():
    remote = two_builds()
    assert select_target(remote, LOCATION).build_id == "20250301T100000.000000Z-aaa"


def test_a_build_serving_the_same_as_the_live_one_is_skipped():
    # A new commit with the same files publishes a manifest of its own: rolling back to it would change nothing.
    builds = [
        ("20250301T100000.000000Z-aaa", build_v1()),
        ("20250301T110000.000000Z-bbb", build_v2()),
        ("20250301T120000.000000Z-bbb", build_v2()),
    ]
    remote = with_sources(published("", builds), "1" * 40, "2" * 40, "2" * 40)
    assert select_target(remote, LOCATION).build_id == "20250301T100000.000000Z-aaa"


def test_after_a_rollback_the_previous_build_is_the_one_before_the_restored_one():
    builds = [
        ("20250301T090000.000000Z-zzz", build_v2()),
        ("20250301T100000.000000Z-aaa", build_v1()),
        ("20250301T110000.000000Z-bbb", build_v2()),
        ("20250301T120000.000000Z-aaa", build_v1()),
    ]
    remote = with_sources(published("", builds), "0" * 40, "1" * 40, "2" * 40, "1" * 40)
    remote.manifests[remote.manifest_keys[-1]].restored_from = "20250301T100000.000000Z-aaa"
    assert select_target(remote, LOCATION).build_id == "20250301T090000.000000Z-zzz"


def test_nothing_before_the_live_build_names_the_kept_builds():
    remote = with_sources(published("", [("20250301T100000.000000Z-aaa", build_v1())]), "1" * 40)
    with pytest.raises(
        RollbackError, match=r"keeps no build before the live one, 20250301T100000.000000Z-aaa \(commit 1{40}\)"
    ):
        select_target(remote, LOCATION)


def test_nothing_published():
    with pytest.raises(RollbackError, match="Nothing has been published to s3://bucket/"):
        select_target(RemoteState(listing={}, manifest_keys=[]), LOCATION)


def test_target_by_commit_abbreviation_and_by_build_id():
    remote = two_builds()
    assert select_target(remote, LOCATION, commit="1111111").build_id == "20250301T100000.000000Z-aaa"
    assert select_target(remote, LOCATION, commit="2" * 40).build_id == "20250301T110000.000000Z-bbb"
    key = manifest_key_for("", "20250301T100000.000000Z-aaa")
    assert select_target(remote, LOCATION, build_id=key).build_id == "20250301T100000.000000Z-aaa"
    with pytest.raises(RollbackError, match="too short"):
        select_target(remote, LOCATION, commit="111")
    with pytest.raises(RollbackError, match=r"'ZZZZ not a commit' is not a commit ID \(7 to 40 hexadecimal"):
        select_target(remote, LOCATION, commit="ZZZZ not a commit")
    with pytest.raises(
        RollbackError,
        match=r"No build of commit 3333333 is kept in s3://bucket/; the builds it keeps are 20250301T110000",
    ):
        select_target(remote, LOCATION, commit="3333333")
    with pytest.raises(RollbackError, match="Build 20240101T000000.000000Z-x is not one of the builds"):
        select_target(remote, LOCATION, build_id="20240101T000000.000000Z-x")


def test_dirty_builds_match_their_commit():
    remote = with_sources(published("", [("20250301T100000.000000Z-aaa", build_v1())]), "1" * 40 + "-dirty")
    assert select_target(remote, LOCATION, commit="1111111").build_id == "20250301T100000.000000Z-aaa"


def test_files_come_from_the_live_objects_or_the_stored_copies():
    remote = two_builds()
    target = remote.manifests[remote.manifest_keys[0]]
    files = {item.path: item for item in files_to_restore("", target, remote, LOCATION)}
    assert set(files) == {item.path for item in build_v1()}
    assert files["index.html"].copy_from == stored_copy_key("", index_of(build_v1()))
    # Unchanged between the builds, or content-hashed and kept: still live under their own names.
    assert {path for path, item in files.items() if not item.copy_from} == set(files) - {"index.html"}


def test_a_file_neither_live_nor_stored_fails_naming_it():
    remote = two_builds(stored=set())
    target = remote.manifests[remote.manifest_keys[0]]
    with pytest.raises(RollbackError, match=r"no longer holds 1 of its files \(index.html\). Nothing was changed"):
        files_to_restore("", target, remote, LOCATION)


def test_rollback_plan_copies_what_differs_entry_documents_last_and_keeps_what_it_overwrites():
    remote = two_builds()
    plan, target = plan_rollback("", remote, 2, ["*.html"], NOW + datetime.timedelta(hours=2), LOCATION)
    assert target.build_id == "20250301T100000.000000Z-aaa"
    assert [item.path for item in plan.uploads] == ["index.html"]
    assert plan.source == {"commit": "1" * 40}
    manifest = plan.manifest()
    assert manifest.restored_from == target.build_id
    assert {path: record.sha256 for path, record in manifest.objects.items()} == {
        item.path: item.sha256 for item in build_v1()
    }
    # v2's index.html is overwritten and v2 stays kept: it is copied aside first.
    assert plan.preserve == {stored_copy_key("", index_of(build_v2())): "index.html"}
    assert plan.invalidation_paths == ["/index.html"]


def test_rollback_to_the_live_build_changes_nothing():
    remote = two_builds()
    plan, target = plan_rollback("", remote, 2, ["*.html"], NOW, LOCATION, commit="2222222")
    assert not plan.changed and plan.build_id == target.build_id
    assert rollback_summary(plan, target, LOCATION, check_mode=False) == (
        f"{target.build_id} (commit {'2' * 40}) is live in s3://bucket/ already: nothing to put back"
    )


def summaries(plan, target) -> tuple[str, str]:
    """What the rollback says when it runs, and in check mode."""
    return (
        rollback_summary(plan, target, LOCATION, check_mode=False),
        rollback_summary(plan, target, LOCATION, check_mode=True),
    )


def test_the_summary_names_the_build_put_back_and_what_was_copied():
    remote = two_builds()
    plan, target = plan_rollback("", remote, 2, ["*.html"], NOW + datetime.timedelta(hours=2), LOCATION)
    build = f"20250301T100000.000000Z-aaa (commit {'1' * 40})"
    assert summaries(plan, target) == (
        f"Put {build} back live in s3://bucket/: 1 file copied inside the bucket",
        f"Would put {build} back live in s3://bucket/, copying 1 file inside the bucket",
    )


def test_the_summary_of_a_rollback_to_the_live_build_that_prunes_says_it_was_live():
    # keep_previous=0: the previous build's manifest goes, but the live build stays as it is.
    plan, target = plan_rollback("", two_builds(), 0, ["*.html"], NOW, LOCATION, commit="2222222")
    assert plan.changed and plan.obsolete_manifest_keys
    assert rollback_summary(plan, target, LOCATION, check_mode=False) == (
        f"20250301T110000.000000Z-bbb (commit {'2' * 40}) is live in s3://bucket/ already: nothing to put back"
    )


def test_the_summary_of_a_build_whose_files_are_live_says_only_its_manifest_was_written():
    builds = [
        ("20250301T100000.000000Z-aaa", build_v1()),
        ("20250301T110000.000000Z-bbb", build_v2()),
        ("20250301T120000.000000Z-bbb", build_v2()),
    ]
    remote = with_sources(published("", builds), "1" * 40, "2" * 40, "3" * 40)
    plan, target = plan_rollback(
        "", remote, 2, ["*.html"], NOW + datetime.timedelta(hours=3), LOCATION, commit="2222222"
    )
    assert not plan.uploads and plan.new_manifest
    build = f"20250301T110000.000000Z-bbb (commit {'2' * 40})"
    assert summaries(plan, target) == (
        f"Put {build} back live in s3://bucket/: its files were live, only its manifest was written",
        f"Would put {build} back live in s3://bucket/, writing only its manifest (its files are live)",
    )


def test_the_summary_of_a_build_without_a_commit_names_it_by_its_id():
    remote = with_sources(two_builds(), None, None)
    plan, target = plan_rollback("", remote, 2, ["*.html"], NOW + datetime.timedelta(hours=2), LOCATION)
    assert rollback_summary(plan, target, LOCATION, check_mode=False) == (
        "Put 20250301T100000.000000Z-aaa back live in s3://bucket/: 1 file copied inside the bucket"
    )


def test_publish_copies_aside_only_what_a_kept_build_needs():
    v1 = build_v1()
    remote = published("", [("20250301T100000.000000Z-aaa", v1)])
    plan = plan_publish("", build_v2(), remote, 1, ["*.html"], NOW)
    assert plan.preserve == {stored_copy_key("", index_of(v1)): "index.html"}
    # keep_previous=0: v1 is not kept, nothing to copy.
    assert plan_publish("", build_v2(), remote, 0, ["*.html"], NOW).preserve == {}
    # Copied before already: not again.
    remote.stored = {index_of(v1)}
    assert plan_publish("", build_v2(), remote, 1, ["*.html"], NOW).preserve == {}


def test_copies_no_kept_build_needs_are_deleted():
    remote = published("", [("20250301T100000.000000Z-aaa", build_v1()), ("20250301T110000.000000Z-bbb", build_v2())])
    remote.stored = {index_of(build_v1()), "f" * 64}
    plan = plan_publish("", build_v2(), remote, 1, ["*.html"], NOW)
    assert plan.obsolete_stored_keys == [stored_copy_key("", "f" * 64)]
    plan = plan_publish("", build_v2(), remote, 0, ["*.html"], NOW)
    assert plan.obsolete_stored_keys == sorted(stored_copy_key("", sha) for sha in remote.stored)


def test_referenced_files_carry_the_manifest_records():
    files = build_v1()
    manifest = Manifest(build_id="b", objects={item.path: record_of(item) for item in files})
    html = '<script type="module" src="/assets/index-AbCd1234.js"></script><img src="flora-logo.png">'
    referenced = {item.path: item for item in referenced_by_index(html, manifest, "/", LOCATION)}
    assert set(referenced) == {"assets/index-AbCd1234.js", "flora-logo.png"}
    logo = next(item for item in files if item.path == "flora-logo.png")
    assert dataclasses.astuple(referenced["flora-logo.png"]) == (
        "flora-logo.png",
        "flora-logo.png",
        logo.cache_control,
        logo.content_type,
        logo.sha256,
        logo.size,
    )


def test_an_object_changed_by_other_tools_is_put_back_from_its_copy():
    remote = two_builds(stored={item.sha256 for item in build_v1()})
    # Someone overwrote the logo by hand: the listing no longer matches what any manifest recorded.
    remote.listing["flora-logo.png"] = ListedObject("flora-logo.png", 3, "other")
    target = remote.manifests[remote.manifest_keys[0]]
    files = {item.path: item for item in files_to_restore("", target, remote, LOCATION)}
    logo = next(item for item in build_v1() if item.path == "flora-logo.png")
    assert files["flora-logo.png"].copy_from == stored_copy_key("", logo.sha256)


def test_what_a_publish_overwrites_is_copied_aside_before_the_upload(tmp_path):
    client = FakeS3()
    write_build(tmp_path / "v1")
    publish(client, tmp_path / "v1")
    old_index = client.objects["index.html"]["Body"]
    write_build(tmp_path / "v2", "XyZw9876", "console.log(2)")
    client.calls.clear()
    publish(client, tmp_path / "v2", now=NOW + datetime.timedelta(minutes=1))
    stored = stored_copy_key("", hashlib.sha256(old_index).hexdigest())
    writes = [(operation, key) for operation, key in client.calls if operation in ("copy_object", "put_object")]
    assert writes[0] == ("copy_object", stored)
    assert writes.index(("put_object", "index.html")) > 0
    assert client.objects[stored]["Body"] == old_index


def test_nothing_before_the_build_a_rollback_put_back_says_so_and_how_to_go_forward():
    builds = [("20250301T100000.000000Z-aaa", build_v1()), ("20250301T110000.000000Z-aaa", build_v1())]
    remote = with_sources(published("", builds), "1" * 40, "1" * 40)
    remote.manifests[remote.manifest_keys[-1]].restored_from = "20250301T100000.000000Z-aaa"
    with pytest.raises(RollbackError) as raised:
        select_target(remote, LOCATION)
    assert ", a rollback to 20250301T100000.000000Z-aaa, to roll back to" in str(raised.value)
    assert str(raised.value).endswith("name one by its build ID or commit to put it back")
