"""module_utils/ledger_update.py's update_ledger, as flora.deploy.release_ledger and flora.deploy.release_activate
call it, on a real ledger, lock and releases directory."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.ledger_update import (
    LEDGER_OPTIONS,
    LOCK_OPTIONS,
    LedgerUpdateError,
    update_ledger,
)

OLD, NEW, STALE = "a" * 40, "b" * 40, "c" * 40


class Host:
    """What update_ledger takes from the module: check mode, warnings, run_command."""

    check_mode = False

    def __init__(self):
        self.warnings: list[str] = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)

    def run_command(self, command, use_unsafe_shell=False):
        done = subprocess.run(command, shell=use_unsafe_shell, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr


def options(**given) -> dict:
    """release_ledger's options with their defaults, as AnsibleModule hands them over."""
    spec = dict(LEDGER_OPTIONS, **LOCK_OPTIONS)
    return {name: given.get(name, option.get("default")) for name, option in spec.items()}


def test_records_the_live_release_prunes_and_releases_the_lock(tmp_path):
    root = tmp_path / "Flora"
    for commit in (STALE, OLD, NEW):
        (root / "releases" / commit).mkdir(parents=True)
    ledger = root / "releases.json"
    ledger.write_text(
        json.dumps(
            {
                "version": 1,
                "current": OLD,
                "releases": [
                    {"commit": c, "status": s, "deployed_at": t, "updated_at": t}
                    for c, s, t in (
                        (STALE, "previous", "2026-01-01T00:00:00+00:00"),
                        (OLD, "live", "2026-01-02T00:00:00+00:00"),
                    )
                ],
            }
        )
    )
    lock = root / ".deploy.lock"
    lock.mkdir()
    (lock / "owner").write_text("controller:1:2")

    result = update_ledger(
        Host(),
        options(
            path=str(ledger),
            commit=NEW,
            ref="v2",
            status="live",
            releases_dir=str(root / "releases"),
            prune_keep=2,
            deps_dir=str(root / "deps"),
            lock=str(lock),
            lock_owner="controller:1:2",
            lock_release=True,
            env_checksum="1" * 64,
        ),
    )

    assert result["changed"] and result["lock_released"]
    assert (result["current"], result["last_good"], result["pruned"]) == (NEW, OLD, [STALE])
    assert not lock.exists()
    written = json.loads(ledger.read_text())
    assert {r["commit"]: r["status"] for r in written["releases"]} == {STALE: "pruned", OLD: "previous", NEW: "live"}
    assert written["env_checksum"] == "1" * 64
    deadline = time.monotonic() + 30
    while any(p.name.startswith(".pruned-") for p in (root / "releases").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(p.name for p in (root / "releases").iterdir()) == [OLD, NEW]


def test_someone_elses_lock_stays_and_a_bad_ledger_is_an_error_naming_it(tmp_path):
    lock = tmp_path / ".deploy.lock"
    lock.mkdir()
    (lock / "owner").write_text("other:1:2")
    ledger = tmp_path / "releases.json"

    result = update_ledger(
        Host(), options(path=str(ledger), env_checksum="2" * 64, lock=str(lock), lock_owner="me:3:4", lock_release=True)
    )
    assert result["lock_released"] is False
    assert lock.is_dir()
    assert json.loads(ledger.read_text())["env_checksum"] == "2" * 64

    ledger.write_text("{not json")
    with pytest.raises(LedgerUpdateError, match=f"^Cannot read {ledger}: the ledger is not valid JSON"):
        update_ledger(Host(), options(path=str(ledger), commit=NEW, status="live"))


def test_a_lock_taken_by_this_call_is_released_when_the_ledger_cannot_be_read(tmp_path):
    ledger = tmp_path / "releases.json"
    ledger.write_text("[]")
    lock = tmp_path / ".deploy.lock"

    with pytest.raises(LedgerUpdateError, match="has no 'releases' list"):
        update_ledger(Host(), options(path=str(ledger), lock=str(lock), lock_owner="me:1:2"))
    assert not lock.exists()

    ledger.write_text('{"releases": []}')
    taken = update_ledger(Host(), options(path=str(ledger), lock=str(lock), lock_owner="me:1:2"))
    assert taken["lock_holder"] == ""
    assert (lock / "owner").read_text().strip() == "me:1:2"


def test_a_backup_is_appended_to_the_ledgers_backups_and_reading_alone_writes_nothing(tmp_path):
    path = tmp_path / "releases.json"
    first = {"key": "db-backups/flora_db/a-1.dump", "release": NEW, "schema_of": OLD}
    second = {"key": "db-backups/flora_db/b-2.dump", "release": STALE, "schema_of": NEW}

    assert update_ledger(Host(), options(path=str(path), backup=first))["changed"]
    result = update_ledger(Host(), options(path=str(path), backup=second))

    assert result["changed"] and result["backups"] == [first, second]
    assert json.loads(path.read_text())["backups"] == [first, second]
    assert not update_ledger(Host(), options(path=str(path)))["changed"]
