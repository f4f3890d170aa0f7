# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What flora.deploy.release_ledger does, for the module and for the redeploy's reload, which records the release
it checked in the same round trip (roles/backend_redeploy/files/record_release.py).

``update_ledger`` takes the module, or an object with the same ``params``, ``check_mode``, ``warn``,
``run_command``, ``fail_json`` and ``exit_json``. Standard library and this collection's module_utils only.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shlex

from ansible_collections.flora.deploy.plugins.module_utils.deploy_lock import release_lock
from ansible_collections.flora.deploy.plugins.module_utils.envfile import write_atomically
from ansible_collections.flora.deploy.plugins.module_utils.ledger_access import (
    link_target_name,
    read_ledger_for_module,
    take_lock_for_module,
)
from ansible_collections.flora.deploy.plugins.module_utils.release_ledger import (
    STATUSES,
    last_good,
    record_release,
    releases_to_prune,
    render_ledger,
    set_aside,
    set_aside_dirs,
    unused_deps,
)

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    commit=dict(type="str"),
    status=dict(type="str", choices=list(STATUSES)),
    ref=dict(type="str"),
    reason=dict(type="str"),
    releases_dir=dict(type="path"),
    prune_keep=dict(type="int"),
    deps_dir=dict(type="path"),
    owner=dict(type="str"),
    current_link=dict(type="path"),
    lock=dict(type="path"),
    lock_owner=dict(type="str"),
    lock_timeout=dict(type="int", default=0),
    lock_lease=dict(type="int", default=1800),
    lock_takeover_from=dict(type="str"),
    lock_release=dict(type="bool", default=False),
    env_checksum=dict(type="str"),
)
MODULE_OPTIONS = dict(
    required_together=[["commit", "status"], ["releases_dir", "prune_keep"]],
    required_by={"lock": "lock_owner", "lock_takeover_from": "lock", "deps_dir": "prune_keep"},
    required_if=[["lock_release", True, ["lock"]]],
    mutually_exclusive=[["lock_release", "lock_takeover_from"]],
)


def release_directories(path):
    """Finished release directories (work directories of interrupted builds start with a dot)."""
    return sorted(
        name for name in os.listdir(path) if not name.startswith(".") and os.path.isdir(os.path.join(path, name))
    )


def delete_in_background(module, parents, set_aside_now):
    """Delete the directories set aside in ``parents``, this call's and any an earlier one left, after this module
    returns.

    A release directory holds thousands of files: deleting them would keep the play waiting.
    """
    aside = [path for parent in parents if os.path.isdir(parent) for path in set_aside_dirs(parent)]
    if not aside:
        return
    earlier = [path for path in aside if path not in set_aside_now]
    if earlier:
        module.warn(f"Deleting again what an earlier prune could not delete: {', '.join(earlier)}")
    # In the background, away from the module's output and in a session of its own: it outlives this module, and
    # sudo's pty hangs up the module's process group.
    command = "rm -rf -- " + " ".join(shlex.quote(path) for path in aside)
    rc, _out, err = module.run_command(f"setsid {command} </dev/null >/dev/null 2>&1 &", use_unsafe_shell=True)
    if rc != 0:
        module.warn(f"Cannot start deleting {', '.join(aside)} in the background: {err.strip()}")


def update_ledger(module) -> None:
    """Record, prune and lock as the options say, then exit the module with the result."""
    params = module.params
    path = params["path"]
    lock_holder = ""
    if params["lock"] and not params["lock_release"] and not module.check_mode:
        lock_holder = take_lock_for_module(module)
    # A lock this call took (or was to release) is not left behind by its failure.
    holds_lock = params["lock"] and not lock_holder and not module.check_mode
    text, ledger = read_ledger_for_module(module, path, params["lock"] if holds_lock else None, params["lock_owner"])

    # datetime.UTC is Python 3.11: Ubuntu 22.04 hosts have 3.10.
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017
    # Without the lock, another run owns the ledger and the releases: read only.
    writes = not lock_holder
    if params["commit"] and writes:
        ledger = record_release(ledger, params["commit"], params["status"], now, params["ref"], params["reason"])
    if params["env_checksum"] and writes:
        ledger["env_checksum"] = params["env_checksum"]

    pruned, pruned_deps, prune_errors, set_aside_now = [], [], [], []
    if params["prune_keep"] is not None:
        if params["prune_keep"] < 1:
            module.fail_json(msg="prune_keep must be at least 1")
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
    changed = bool(((params["commit"] or params["env_checksum"]) and writes) or pruned) and content != text
    if changed and not module.check_mode:
        uid = pwd.getpwnam(params["owner"]).pw_uid if params["owner"] else -1
        gid = pwd.getpwnam(params["owner"]).pw_gid if params["owner"] else -1
        write_atomically(path, content, 0o644, uid, gid)
    result = dict(
        changed=changed or bool(pruned) or bool(pruned_deps),
        current=ledger.get("current"),
        last_good=last_good(ledger, exclude=ledger.get("current")),
        releases=ledger["releases"],
        env_checksum=ledger.get("env_checksum"),
        pruned=pruned,
        pruned_deps=pruned_deps,
    )
    if params["current_link"]:
        result["linked"] = link_target_name(params["current_link"])
    if params["lock_release"]:
        result["lock_released"] = not module.check_mode and release_lock(params["lock"], params["lock_owner"])
    elif params["lock"]:
        result["lock_holder"] = lock_holder
    if prune_errors:
        module.fail_json(msg="Cannot delete old release directories: " + "; ".join(prune_errors), **result)
    module.exit_json(**result)
