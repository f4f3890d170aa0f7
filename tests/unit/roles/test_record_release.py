"""roles/backend_redeploy/files/record_release.py: flora.deploy.release_ledger's logic run as the reload runs it,
from a copy of the collection's module_utils, on a real ledger, lock and releases directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "roles" / "backend_redeploy" / "files" / "record_release.py"
UTILS = ("deploy_lock", "envfile", "ledger_access", "ledger_update", "release_ledger")
OLD, NEW, STALE = "a" * 40, "b" * 40, "c" * 40


@pytest.fixture
def utils(tmp_path) -> Path:
    """The module_utils tree the reload writes: only the files it copies."""
    root = tmp_path / "py"
    target = root / "ansible_collections" / "flora" / "deploy" / "plugins" / "module_utils"
    target.mkdir(parents=True)
    for name in UTILS:
        shutil.copy(REPO / "plugins" / "module_utils" / f"{name}.py", target / f"{name}.py")
    return root


def record(utils: Path, **options) -> dict:
    done = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), str(utils), json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("recorded "), done.stdout
    return json.loads(done.stdout.removeprefix("recorded "))


def test_records_the_live_release_prunes_and_releases_the_lock(utils, tmp_path):
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

    result = record(
        utils,
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
    )

    assert not result.get("failed"), result
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


def test_someone_elses_lock_stays_and_a_failure_is_a_result_not_an_exit(utils, tmp_path):
    lock = tmp_path / ".deploy.lock"
    lock.mkdir()
    (lock / "owner").write_text("other:1:2")
    ledger = tmp_path / "releases.json"

    result = record(
        utils, path=str(ledger), env_checksum="2" * 64, lock=str(lock), lock_owner="me:3:4", lock_release=True
    )
    assert result["lock_released"] is False
    assert lock.is_dir()

    ledger.write_text("{not json")
    failed = record(utils, path=str(ledger), commit=NEW, status="live")
    assert failed["failed"]
    assert failed["msg"].startswith(f"Cannot read {ledger}: the ledger is not valid JSON")
    assert record(utils, path=str(ledger), colour="blue") == {"failed": True, "msg": "unknown options: colour"}
