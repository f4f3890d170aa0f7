from __future__ import annotations

import json

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.release_ledger import (
    DEPS_MARKER,
    LedgerError,
    empty_ledger,
    last_good,
    parse_ledger,
    record_release,
    releases_to_prune,
    render_ledger,
    set_aside,
    set_aside_dirs,
    unused_deps,
)

OLD = "a" * 40


def deploy(ledger, *commits_and_statuses):
    for step, (commit, status) in enumerate(commits_and_statuses):
        ledger = record_release(ledger, commit, status, f"2026-01-01T00:00:{step:02d}+00:00", ref="main")
    return ledger


def test_going_live_demotes_the_former_live_release():
    ledger = deploy(empty_ledger(), ("a", "built"), ("a", "live"), ("b", "built"), ("b", "live"))
    assert ledger["current"] == "b"
    assert {r["commit"]: r["status"] for r in ledger["releases"]} == {"a": "previous", "b": "live"}
    assert last_good(ledger, exclude="b") == "a"


def test_a_failed_release_is_never_last_good():
    ledger = deploy(empty_ledger(), ("a", "live"), ("b", "live"), ("c", "failed"))
    assert ledger["current"] == "b"
    assert last_good(ledger, exclude="b") == "a"
    assert last_good(ledger) == "b"


def test_failure_message_is_kept_until_the_release_succeeds():
    ledger = record_release(empty_ledger(), "a", "failed", "t1", message="health check failed")
    assert ledger["releases"][0]["message"] == "health check failed"
    ledger = record_release(ledger, "a", "live", "t2")
    assert "message" not in ledger["releases"][0]


def test_prune_keeps_current_and_last_good_whatever_their_age():
    ledger = deploy(
        empty_ledger(), ("old-good", "live"), ("f1", "failed"), ("f2", "failed"), ("f3", "failed"), ("cur", "live")
    )
    # last good other than current is old-good (f1..f3 failed); keep 2 means cur + old-good only.
    present = ["old-good", "f1", "f2", "f3", "cur", "untracked"]
    assert sorted(releases_to_prune(ledger, 2, present)) == ["f1", "f2", "f3", "untracked"]
    assert sorted(releases_to_prune(ledger, 4, present)) == ["f1", "untracked"]


def test_record_rejects_unknown_status():
    with pytest.raises(LedgerError):
        record_release(empty_ledger(), "a", "deployed", "t")


def test_round_trip_and_bad_files():
    ledger = deploy(empty_ledger(), ("a", "live"))
    assert parse_ledger(render_ledger(ledger)) == ledger
    assert parse_ledger("") == empty_ledger()
    with pytest.raises(LedgerError):
        parse_ledger("{not json")
    with pytest.raises(LedgerError):
        parse_ledger("[]")


def test_set_aside_renames_a_release_out_of_the_releases(tmp_path):
    (tmp_path / OLD / "dist").mkdir(parents=True)
    (tmp_path / f".pruned-{OLD}").mkdir()  # left by an earlier prune

    aside = set_aside(str(tmp_path), OLD)

    assert aside == str(tmp_path / f".pruned-{OLD}.1")
    assert (tmp_path / f".pruned-{OLD}.1" / "dist").is_dir()
    assert not (tmp_path / OLD).exists()
    assert set_aside_dirs(str(tmp_path)) == [str(tmp_path / f".pruned-{OLD}"), aside]


def test_set_aside_refuses_a_symbolic_link(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / OLD).symlink_to(tmp_path / "elsewhere")

    with pytest.raises(OSError, match="is a symbolic link, not a release directory"):
        set_aside(str(tmp_path), OLD)
    assert (tmp_path / OLD).is_symlink()
    assert set_aside_dirs(str(tmp_path)) == []


def shared_install(deps_dir, key):
    (deps_dir / key / ".pnpm").mkdir(parents=True)
    (deps_dir / key / DEPS_MARKER).write_text(
        json.dumps({"key": key, "trees": ["node_modules"], "store": "node_modules/.pnpm"})
    )


def release_linking(releases_dir, name, deps_dir, key):
    (releases_dir / name / "node_modules").mkdir(parents=True)
    (releases_dir / name / "node_modules" / ".pnpm").symlink_to(deps_dir / key / ".pnpm")


def test_shared_installs_no_release_links_to_are_unused(tmp_path):
    releases, deps = tmp_path / "releases", tmp_path / "deps"
    for key in ("used", "by-a-build", "by-a-pruned-one", "unused", "gone-with-its-release"):
        shared_install(deps, key)
    release_linking(releases, "a" * 40, deps, "used")
    release_linking(releases, "b" * 40, deps, "used")
    release_linking(releases, f".{'c' * 40}.partial", deps, "by-a-build")
    release_linking(releases, f".pruned-{'d' * 40}", deps, "by-a-pruned-one")
    release_linking(releases, "e" * 40, deps, "gone-with-its-release")
    # What an interrupted sharing left, and a directory that is not a shared install.
    (deps / ".f.partial" / ".pnpm").mkdir(parents=True)
    (deps / "no-marker").mkdir()
    (deps / ".pruned-old").mkdir()

    assert unused_deps(str(releases), str(deps), gone=["e" * 40]) == [
        ".f.partial",
        "by-a-pruned-one",
        "gone-with-its-release",
        "no-marker",
        "unused",
    ]
    assert unused_deps(str(releases), str(tmp_path / "none")) == []
