# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What flora.deploy.release_ledger does: record a release, prune old ones, take or release the deploy lock.

flora.deploy.release_activate records the release it activated with the same function, in its own round trip.
``update_ledger`` takes the options of release_ledger (LEDGER_OPTIONS) and the module for check mode, warnings and
run_command, and returns the result; it raises LedgerUpdateError instead of failing the module, so a caller whose
release already serves can report a ledger it could not write without failing for it.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shlex
import typing as t

from ansible_collections.flora.deploy.plugins.module_utils.database import record_backup
from ansible_collections.flora.deploy.plugins.module_utils.deploy_lock import release_lock, take_lock, take_over_lock
from ansible_collections.flora.deploy.plugins.module_utils.envfile import write_atomically
from ansible_collections.flora.deploy.plugins.module_utils.ledger_access import link_target_name, read_text
from ansible_collections.flora.deploy.plugins.module_utils.release_ledger import (
    STATUSES,
    LedgerError,
    last_good,
    parse_ledger,
    record_release,
    releases_to_prune,
    render_ledger,
    set_aside,
    set_aside_dirs,
    unused_deps,
)

# Recording and pruning; release_ledger adds the lock options (LOCK_OPTIONS) to these.
LEDGER_OPTIONS = dict(
    path=dict(type="path", required=True),
    commit=dict(type="str"),
    status=dict(type="str", choices=list(STATUSES)),
    ref=dict(type="str"),
    reason=dict(type="str"),
    releases_dir=dict(type="path"),
    prune_keep=dict(type="int"),
    deps_dir=dict(type="path"),
    owner=dict(type="str"),
    env_checksum=dict(type="str"),
    backup=dict(type="dict"),
)
LOCK_OPTIONS = dict(
    current_link=dict(type="path"),
    lock=dict(type="path"),
    lock_owner=dict(type="str"),
    lock_timeout=dict(type="int", default=0),
    lock_lease=dict(type="int", default=1800),
    lock_takeover_from=dict(type="str"),
    lock_release=dict(type="bool", default=False),
)
LEDGER_REQUIRED_TOGETHER = [["commit", "status"], ["releases_dir", "prune_keep"]]
LEDGER_REQUIRED_BY = {"deps_dir": "prune_keep"}


class LedgerUpdateError(Exception):
    """The ledger could not be read or written, or old releases could not be set aside; ``result`` holds what
    was done before."""

    def __init__(self, msg: str, result: dict | None = None):
        super().__init__(msg)
        self.result = result or {}


def release_directories(path: str) -> list[str]:
    """Finished release directories (work directories of interrupted builds start with a dot)."""
    return sorted(
        name for name in os.listdir(path) if not name.startswith(".") and os.path.isdir(os.path.join(path, name))
    )


def delete_in_background(module, parents: t.Sequence[str], set_aside_now: t.Sequence[str]) -> None:
    """Delete the directories set aside in ``parents``, this call's and any an earlier one left, after the module
    returns.

    A release directory holds thousands of files: deleting them would keep the play waiting.
    """
    aside = [path for parent in parents if os.path.isdir(parent) for path in set_aside_dirs(parent)]
    if not aside:
        return
    earlier = [path for path in aside if path not in set_aside_now]
    if earlier:
        module.warn(f"Deleting again what an earlier prune could not delete: {', '.join(earlier)}")
    # In the background, away from the module's output and in a session of its own: it outlives the module, and
    # sudo's pty hangs up the module's process group.
    command = "rm -rf -- " + " ".join(shlex.quote(path) for path in aside)
    rc, _out, err = module.run_command(f"setsid {command} </dev/null >/dev/null 2>&1 &", use_unsafe_shell=True)
    if rc != 0:
        module.warn(f"Cannot start deleting {', '.join(aside)} in the background: {err.strip()}")


def take_or_read_lock(module, params: dict) -> str:
    """Take the lock of release_ledger's lock options, or take it over from a dead holder; the holder when
    another run has it. Raises LedgerUpdateError when the lock cannot be taken."""
    lock, owner = params["lock"], params["lock_owner"]
    try:
        if params["lock_takeover_from"]:
            return take_over_lock(lock, owner, params["lock_takeover_from"])
        holder, notes = take_lock(lock, owner, params["lock_timeout"], params["lock_lease"])
    except OSError as e:
        raise LedgerUpdateError(f"Cannot take the lock {lock}: {e}") from e
    for note in notes:
        module.warn(f"{lock}: {note}")
    return holder


def update_ledger(module, params: dict) -> dict:
    """Record, prune and lock as ``params`` say (release_ledger's options); returns the module result."""
    path = params["path"]
    lock = params.get("lock")
    lock_release = params.get("lock_release", False)
    lock_holder = ""
    if lock and not lock_release and not module.check_mode:
        lock_holder = take_or_read_lock(module, params)
    # A lock this call took (or was to release) is not left behind by its failure.
    holds_lock = bool(lock) and not lock_holder and not module.check_mode
    try:
        text = read_text(path)
        ledger = parse_ledger(text)
    except (OSError, LedgerError) as e:
        if holds_lock:
            release_lock(lock, params["lock_owner"])
        raise LedgerUpdateError(f"Cannot read {path}: {e}") from e

    # datetime.UTC is Python 3.11: Ubuntu 22.04 hosts have 3.10.
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017
    # Without the lock, another run owns the ledger and the releases: read only.
    writes = not lock_holder
    if params["commit"] and writes:
        ledger = record_release(ledger, params["commit"], params["status"], now, params["ref"], params["reason"])
    if params["env_checksum"] and writes:
        ledger["env_checksum"] = params["env_checksum"]
    if params.get("backup") and writes:
        ledger = record_backup(ledger, params["backup"])

    pruned, pruned_deps, prune_errors, set_aside_now = [], [], [], []
    if params["prune_keep"] is not None:
        if params["prune_keep"] < 1:
            raise LedgerUpdateError("prune_keep must be at least 1")
        # A directory that cannot be set aside fails the task, after the ledger records the rest.
        present = release_directories(params["releases_dir"]) if writes else []
        for commit in releases_to_prune(ledger, params["prune_keep"], present):
            if not module.check_mode:
                try:
                    set_aside_now.append(set_aside(params["releases_dir"], commit))
                except OSError as e:
                    prune_errors.append(f"{commit}: {e}")
                    continue
            pruned.append(commit)
            if any(release["commit"] == commit for release in ledger["releases"]):
                ledger = record_release(ledger, commit, "pruned", now)
        if params["deps_dir"] and writes:
            for name in unused_deps(params["releases_dir"], params["deps_dir"], gone=pruned):
                if not module.check_mode:
                    try:
                        set_aside_now.append(set_aside(params["deps_dir"], name))
                    except OSError as e:
                        prune_errors.append(f"{os.path.join(params['deps_dir'], name)}: {e}")
                        continue
                pruned_deps.append(name)
        if writes and not module.check_mode:
            parents = [path for path in (params["releases_dir"], params["deps_dir"]) if path]
            delete_in_background(module, parents, set_aside_now)

    content = render_ledger(ledger)
    # Reading alone never writes, not even an empty ledger.
    changed = (
        bool(((params["commit"] or params["env_checksum"] or params.get("backup")) and writes) or pruned)
        and content != text
    )
    if changed and not module.check_mode:
        owner = pwd.getpwnam(params["owner"]) if params["owner"] else None
        try:
            write_atomically(path, content, 0o644, owner.pw_uid if owner else -1, owner.pw_gid if owner else -1)
        except OSError as e:
            raise LedgerUpdateError(f"Cannot write {path}: {e}") from e
    result = dict(
        changed=changed or bool(pruned) or bool(pruned_deps),
        current=ledger.get("current"),
        last_good=last_good(ledger, exclude=ledger.get("current")),
        releases=ledger["releases"],
        env_checksum=ledger.get("env_checksum"),
        backups=ledger.get("backups", []),
        pruned=pruned,
        pruned_deps=pruned_deps,
    )
    if params.get("current_link"):
        result["linked"] = link_target_name(params["current_link"])
    if lock_release:
        result["lock_released"] = not module.check_mode and release_lock(lock, params["lock_owner"])
    elif lock:
        result["lock_holder"] = lock_holder
    if prune_errors:
        raise LedgerUpdateError("Cannot delete old release directories: " + "; ".join(prune_errors), result)
    return result
