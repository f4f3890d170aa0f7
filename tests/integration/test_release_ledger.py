"""flora.deploy.release_ledger through ansible-playbook: recording, reading, the current link, pruning."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

LEDGER = "release_ledger/ledger.yml"
OLD, NEW = "a" * 40, "b" * 40


@pytest.fixture
def ledger(run_playbook, tmp_path):
    def run(*args: str, **ledger_args) -> dict:
        result = run_playbook(LEDGER, {"ledger_args": ledger_args}, *args)
        assert result.rc == 0, result
        return json.loads((tmp_path / "result.json").read_text())

    return run


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "Flora"
    for commit in (OLD, NEW):
        (root / "releases" / commit).mkdir(parents=True)
    return root


def test_reads_the_current_link_with_the_ledger(ledger, root):
    path = str(root / "releases.json")
    ledger(path=path, commit=OLD, status="live", ref="v1")
    (root / "current").symlink_to(root / "releases" / NEW)

    result = ledger(path=path, current_link=str(root / "current"))

    assert not result["changed"]
    assert result["current"] == OLD
    # The link and the ledger disagree (an interrupted switch): both are reported as they are.
    assert result["linked"] == NEW


def test_current_link_that_is_not_a_link(ledger, root):
    (root / "current").mkdir()
    result = ledger(path=str(root / "releases.json"), current_link=str(root / "current"))
    assert result["linked"] == ""
    assert result["current"] is None
    missing = ledger(path=str(root / "releases.json"), current_link=str(root / "missing"))
    assert missing["linked"] == ""
    # Asked for no link, it reports none.
    plain = ledger(path=str(root / "releases.json"))
    assert not plain.get("failed") and plain["current"] is None
    assert "linked" not in plain


def test_records_releases_in_order_and_check_mode_writes_nothing(ledger, root):
    path = root / "releases.json"
    checked = ledger("--check", path=str(path), commit=OLD, status="live")
    assert not checked.get("failed") and checked["changed"] and checked["current"] == OLD
    assert not path.exists()

    first = ledger(path=str(path), commit=OLD, status="live", ref="v1")
    assert first["changed"]
    second = ledger(path=str(path), commit=NEW, status="live", ref="v2")
    assert second["current"] == NEW
    assert second["last_good"] == OLD
    statuses = {release["commit"]: release["status"] for release in json.loads(path.read_text())["releases"]}
    assert statuses == {OLD: "previous", NEW: "live"}
    assert not ledger(path=str(path))["changed"]


def test_records_the_env_file_the_app_was_reloaded_with(ledger, root):
    path = root / "releases.json"
    assert ledger(path=str(path))["env_checksum"] is None
    checked = ledger("--check", path=str(path), env_checksum="1" * 64)
    assert not checked.get("failed") and checked["changed"] and checked["env_checksum"] == "1" * 64
    assert not path.exists()

    recorded = ledger(path=str(path), commit=OLD, status="live", env_checksum="1" * 64)
    assert recorded["env_checksum"] == "1" * 64
    # Alone, after a reload for new secrets: recorded, and again is no change.
    alone = ledger(path=str(path), env_checksum="2" * 64)
    assert alone["changed"] and alone["current"] == OLD
    assert json.loads(path.read_text())["env_checksum"] == "2" * 64
    assert not ledger(path=str(path), env_checksum="2" * 64)["changed"]
    # A rollback that renders no env file keeps it.
    assert ledger(path=str(path), commit=NEW, status="live")["env_checksum"] == "2" * 64


def release_entries_once_deleted(releases: Path) -> list[str]:
    """The entries of the releases directory once the background deletion of pruned ones is over."""
    deadline = time.monotonic() + 30
    while any(p.name.startswith(".pruned-") for p in releases.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return sorted(p.name for p in releases.iterdir())


def test_prunes_but_keeps_the_current_and_last_good_release(ledger, root):
    path = str(root / "releases.json")
    ledger(path=path, commit=OLD, status="live")
    ledger(path=path, commit=NEW, status="live")
    extra = "c" * 40
    (root / "releases" / extra).mkdir()
    ledger(path=path, commit=extra, status="failed", reason="build failed")
    leftover = root / "releases" / (".pruned-" + "e" * 40)
    (leftover / "dist").mkdir(parents=True)

    result = ledger(path=path, releases_dir=str(root / "releases"), prune_keep=1)

    assert result["pruned"] == [extra]
    assert f"Deleting again what an earlier prune could not delete: {leftover}" in result["warnings"]
    assert not (root / "releases" / extra).exists()
    assert release_entries_once_deleted(root / "releases") == [OLD, NEW]


def share_install(deps: Path, key: str, *releases: Path) -> None:
    """A shared install as flora.deploy.backend_release leaves it, linked from ``releases``."""
    (deps / key / ".pnpm" / "express@4.21.2").mkdir(parents=True)
    (deps / key / ".flora-deps").write_text(
        json.dumps({"key": key, "trees": ["node_modules"], "store": "node_modules/.pnpm"})
    )
    for release in releases:
        (release / "node_modules").mkdir(parents=True)
        (release / "node_modules" / ".pnpm").symlink_to(deps / key / ".pnpm")


def test_prunes_the_shared_installs_only_pruned_releases_linked_to(ledger, root):
    path = str(root / "releases.json")
    stale, also_stale = "c" * 40, "d" * 40
    for commit in (stale, also_stale):
        (root / "releases" / commit).mkdir()
    for commit in (stale, also_stale, OLD, NEW):
        ledger(path=path, commit=commit, status="live")
    deps = root / "deps"
    # "kept" is linked from a release that stays and from one that goes.
    share_install(deps, "kept", root / "releases" / OLD, root / "releases" / also_stale)
    share_install(deps, "live", root / "releases" / NEW)
    share_install(deps, "stale", root / "releases" / stale)
    args = {"path": path, "releases_dir": str(root / "releases"), "prune_keep": 2, "deps_dir": str(deps)}

    checked = ledger("--check", **args)
    assert (sorted(checked["pruned"]), checked["pruned_deps"]) == ([stale, also_stale], ["stale"])
    assert sorted(p.name for p in deps.iterdir()) == ["kept", "live", "stale"]

    result = ledger(**args)
    assert result["changed"]
    assert (sorted(result["pruned"]), result["pruned_deps"]) == ([stale, also_stale], ["stale"])
    assert release_entries_once_deleted(deps) == ["kept", "live"]
    # What the releases that stay link to is still there.
    assert (root / "releases" / OLD / "node_modules" / ".pnpm" / "express@4.21.2").is_dir()

    again = ledger(**args)
    assert not again["changed"]
    assert (again["pruned"], again["pruned_deps"]) == ([], [])


def test_records_the_live_release_even_when_a_prune_fails(run_playbook, tmp_path, root):
    path = root / "releases.json"
    ledger_args = {"path": str(path), "commit": OLD, "status": "live"}
    assert run_playbook(LEDGER, {"ledger_args": ledger_args}).rc == 0
    stale, undeletable = "c" * 40, "d" * 40
    (root / "releases" / stale).mkdir()
    # rmtree refuses a symbolic link: this entry cannot be deleted.
    (tmp_path / "elsewhere").mkdir()
    (root / "releases" / undeletable).symlink_to(tmp_path / "elsewhere")
    for commit in (stale, undeletable):
        ledger_args = {"path": str(path), "commit": commit, "status": "failed"}
        assert run_playbook(LEDGER, {"ledger_args": ledger_args}).rc == 0

    ledger_args = {
        "path": str(path),
        "commit": NEW,
        "status": "live",
        "releases_dir": str(root / "releases"),
        "prune_keep": 1,
    }
    assert run_playbook(LEDGER, {"ledger_args": ledger_args}).rc == 0
    result = json.loads((tmp_path / "result.json").read_text())

    assert result["failed"]
    assert result["msg"].startswith(f"Cannot delete old release directories: {undeletable}: ")
    assert result["pruned"] == [stale]
    statuses = {release["commit"]: release["status"] for release in json.loads(path.read_text())["releases"]}
    assert statuses == {OLD: "previous", NEW: "live", stale: "pruned", undeletable: "failed"}
    assert release_entries_once_deleted(root / "releases") == [OLD, NEW, undeletable]
    assert (tmp_path / "elsewhere").is_dir()


def test_takes_the_lock_and_reads_in_one_call_and_writes_nothing_without_it(ledger, root):
    path, lock = str(root / "releases.json"), str(root / ".deploy.lock")
    (root / "current").symlink_to(root / "releases" / OLD)

    assert not (root / ".deploy.lock").exists()
    checked = ledger("--check", path=path, current_link=str(root / "current"), lock=lock, lock_owner="ci:1:1")
    assert checked["lock_holder"] == ""
    assert not (root / ".deploy.lock").exists()

    first = ledger(path=path, current_link=str(root / "current"), lock=lock, lock_owner="ci:1:1")
    assert first["lock_holder"] == ""
    assert first["linked"] == OLD
    assert not first["changed"]
    assert (root / ".deploy.lock" / "owner").read_text() == "ci:1:1\n"

    second = ledger(path=path, commit=NEW, status="live", lock=lock, lock_owner="laptop:2:2")
    assert second["lock_holder"] == "ci:1:1"
    assert not second["changed"]
    assert not (root / "releases.json").exists()

    # The holder died: taken over from it, and only from it.
    taken = ledger(path=path, lock=lock, lock_owner="laptop:2:2", lock_takeover_from="ci:1:1")
    assert taken["lock_holder"] == ""
    assert (root / ".deploy.lock" / "owner").read_text() == "laptop:2:2\n"
    refused = ledger(path=path, lock=lock, lock_owner="other:3:3", lock_takeover_from="ci:1:1")
    assert refused["lock_holder"] == "laptop:2:2"


def test_records_and_releases_the_lock_in_one_call(ledger, root):
    path, lock = str(root / "releases.json"), str(root / ".deploy.lock")
    assert ledger(path=path, lock=lock, lock_owner="ci:1:1")["lock_holder"] == ""

    # Not its lock: recorded, and the lock stays.
    other = ledger(path=path, commit=OLD, status="live", lock=lock, lock_owner="laptop:2:2", lock_release=True)
    assert other["lock_released"] is False
    assert (root / ".deploy.lock" / "owner").read_text() == "ci:1:1\n"

    checked = ledger("--check", path=path, commit=NEW, status="live", lock=lock, lock_owner="ci:1:1", lock_release=True)
    assert checked["lock_released"] is False
    assert (root / ".deploy.lock").exists()

    done = ledger(path=path, commit=NEW, status="live", lock=lock, lock_owner="ci:1:1", lock_release=True)
    assert done["lock_released"] is True
    assert done["changed"]
    assert "lock_holder" not in done
    assert not (root / ".deploy.lock").exists()
    assert json.loads((root / "releases.json").read_text())["current"] == NEW


def test_a_lock_past_its_lease_is_taken_over_with_a_warning(ledger, root):
    lock = root / ".deploy.lock"
    lock.mkdir()
    (lock / "owner").write_text("dead:1:1\n")
    os.utime(lock, (time.time() - 100, time.time() - 100))

    result = ledger(path=str(root / "releases.json"), lock=str(lock), lock_owner="ci:1:1", lock_lease=60)

    assert result["lock_holder"] == ""
    assert (lock / "owner").read_text() == "ci:1:1\n"
    assert any("took over a lock left" in warning and "dead:1:1" in warning for warning in result["warnings"])


def test_a_ledger_that_cannot_be_read_fails_and_leaves_no_lock(run_playbook, tmp_path, root):
    path = root / "releases.json"
    path.write_text("{not json")
    ledger_args = {"path": str(path), "lock": str(root / ".deploy.lock"), "lock_owner": "ci:1:1"}

    assert run_playbook(LEDGER, {"ledger_args": ledger_args}).rc == 0
    result = json.loads((tmp_path / "result.json").read_text())

    assert result["failed"]
    assert result["msg"].startswith(f"Cannot read {path}: the ledger is not valid JSON")
    assert not (root / ".deploy.lock").exists()
