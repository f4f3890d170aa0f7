# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_ledger
short_description: Record and read the backend's releases on the host
version_added: 0.1.0
description:
  - Keeps a small JSON ledger of the backend's releases on the host (commit, ref, times, status), written
    atomically, so later plays and people can see what is live, what served before and what failed.
  - With O(status=live) the release becomes the current one and the former live release becomes V(previous).
  - With O(prune_keep), release directories in O(releases_dir) beyond the newest O(prune_keep) are deleted,
    never the current release nor the last good one, and are marked V(pruned). The release given in
    O(commit) is recorded first; a directory that cannot be set aside fails the task after the ledger is written.
  - A pruned directory is renamed at once to C(.pruned-<commit>) beside the releases and deleted in the
    background, so the play does not wait for thousands of files to go. What an earlier prune could not
    delete is deleted again, with a warning. A symbolic link among the releases is never pruned.
  - With O(deps_dir), the node_modules trees shared between releases (see the C(flora.deploy.backend_release)
    role) that no release directory left links to are pruned the same way.
author:
  - Flora platform team (@flora-marketplace)
options:
  path:
    description: The ledger file.
    type: path
    required: true
  commit:
    description: The release to record. Without it the module only reads (and prunes).
    type: str
  status:
    description: The release's new status.
    type: str
    choices: [built, live, previous, failed, pruned]
  ref:
    description: The ref the commit was deployed from.
    type: str
  reason:
    description: Why a release failed.
    type: str
  releases_dir:
    description: Directory holding one directory per release commit; needed for O(prune_keep).
    type: path
  prune_keep:
    description: Number of release directories to keep in O(releases_dir), the current and the last good one included.
    type: int
  deps_dir:
    description:
      - Directory of the node_modules trees that releases share; with O(prune_keep), the trees no release
        directory links to any more are pruned too (returned as RV(pruned_deps)).
    type: path
    version_added: 0.1.0
  owner:
    description: Owner of the ledger file.
    type: str
  current_link:
    description:
      - The link that points at the live release directory (for example C(/home/ubuntu/Flora/current)).
      - When given, the name of the directory it points at is returned as RV(linked), so one call reads both
        what the ledger recorded and what is really live.
    type: path
    version_added: 0.1.0
  lock:
    description:
      - The deploy lock, a directory created atomically. When given, the module takes it for O(lock_owner) before
        it reads or writes the ledger, so taking the lock and reading what is live take one round trip.
      - When another run holds it, the module waits up to O(lock_timeout) seconds, then records and prunes nothing
        and returns the holder as RV(lock_holder).
      - A lock older than O(lock_lease) seconds was left by a run that died, and is taken over with a warning.
      - In check mode the lock is neither taken, nor checked, nor released. Taking it is not reported as a
        change, as the play that takes it releases it.
    type: path
    version_added: 0.1.0
  lock_owner:
    description: Who takes the lock, written to its C(owner) file. Required with O(lock).
    type: str
    version_added: 0.1.0
  lock_timeout:
    description: Seconds to wait for another holder of O(lock).
    type: int
    default: 0
    version_added: 0.1.0
  lock_lease:
    description: Seconds after which a lock is considered left by a run that died.
    type: int
    default: 1800
    version_added: 0.1.0
  lock_takeover_from:
    description:
      - Take O(lock) from this holder, known to have died (for example an C(ansible-playbook) killed on this
        controller). The lock is left alone when someone else holds it by then.
    type: str
    version_added: 0.1.0
  env_checksum:
    description:
      - The SHA-256 of the env file the app was just reloaded with (RV(flora.deploy.ssm_env#module:checksum)),
        recorded as the ledger's C(env_checksum). A later redeploy compares it with the env file it renders, so
        an env file that changed without a reload (a run that died in between) still gets one.
      - Written like O(commit), not while another run holds O(lock).
    type: str
    version_added: 0.1.0
  lock_release:
    description:
      - Release O(lock), held by O(lock_owner), once the ledger is written, instead of taking it; so the last step
        of a deploy records its release and ends the lock in one round trip. A lock someone else holds is left
        alone.
    type: bool
    default: false
    version_added: 0.1.0
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Recording a release updates its timestamps, so it reports a change each time a status is set again.
"""

EXAMPLES = r"""
- name: Mark the new release live
  flora.deploy.release_ledger:
    path: /home/ubuntu/Flora/releases.json
    commit: "{{ backend_release_commit }}"
    ref: main
    status: live

- name: Read the ledger and where the current link points
  flora.deploy.release_ledger:
    path: /home/ubuntu/Flora/releases.json
    current_link: /home/ubuntu/Flora/current
  register: ledger

- name: Take the deploy lock and read what is live
  flora.deploy.release_ledger:
    path: /home/ubuntu/Flora/releases.json
    current_link: /home/ubuntu/Flora/current
    lock: /home/ubuntu/Flora/.deploy.lock
    lock_owner: "{{ inventory_hostname }}:{{ 2147483647 | random }}"
  register: ledger
  failed_when: ledger.lock_holder | length > 0

- name: Keep five release directories
  flora.deploy.release_ledger:
    path: /home/ubuntu/Flora/releases.json
    releases_dir: /home/ubuntu/Flora/releases
    prune_keep: 5
"""

RETURN = r"""
current:
  description: The live release's commit, if any.
  returned: always
  type: str
last_good:
  description: The most recent release other than the current one that served successfully.
  returned: always
  type: str
releases:
  description: Every recorded release, oldest first.
  returned: always
  type: list
  elements: dict
linked:
  description:
    - Name of the directory O(current_link) points at (the live release's commit); empty when O(current_link) is
      not a symbolic link.
  returned: when O(current_link) is given
  type: str
  sample: 0d4c6f7e2b9a8c1d3e5f7a9b0c2d4e6f8a1b3c5d
  version_added: 0.1.0
lock_holder:
  description: Who holds O(lock) when this call did not get it; empty when it did.
  returned: when O(lock) is given without O(lock_release)
  type: str
  sample: laptop:48213:1093385512
  version_added: 0.1.0
lock_released:
  description: Whether this call released O(lock) (O(lock_release)).
  returned: when O(lock_release) is true
  type: bool
  version_added: 0.1.0
env_checksum:
  description: The SHA-256 of the env file the running app was last reloaded with, as recorded; null when never recorded.
  returned: always
  type: str
  version_added: 0.1.0
pruned:
  description: Release directories pruned (set aside and being deleted in the background).
  returned: always
  type: list
  elements: str
pruned_deps:
  description: Shared node_modules trees in O(deps_dir) pruned, as no release links to them any more.
  returned: always
  type: list
  elements: str
  version_added: 0.1.0
"""

import datetime
import os
import pwd
import shlex

from ansible.module_utils.basic import AnsibleModule

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


def main():
    module = AnsibleModule(
        argument_spec=dict(
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
        ),
        required_together=[["commit", "status"], ["releases_dir", "prune_keep"]],
        required_by={"lock": "lock_owner", "lock_takeover_from": "lock", "deps_dir": "prune_keep"},
        required_if=[["lock_release", True, ["lock"]]],
        mutually_exclusive=[["lock_release", "lock_takeover_from"]],
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    lock_holder = ""
    if params["lock"] and not params["lock_release"] and not module.check_mode:
        lock_holder = take_lock_for_module(module)
    # A lock this call took (or was to release) is not left behind by its failure.
    holds_lock = params["lock"] and not lock_holder and not module.check_mode
    text, ledger = read_ledger_for_module(module, path, params["lock"] if holds_lock else None, params["lock_owner"])

    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
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


if __name__ == "__main__":
    main()
