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
  backup:
    description:
      - A database backup taken before a schema change (RV(flora.deploy.db_backup#module:backup), or an RDS
        snapshot's C(snapshot), C(release), C(schema_of), C(migrations) and C(taken_at)), appended to the ledger's
        C(backups). playbooks/restore_database.yml restores the one recorded for a release.
      - Written like O(commit), not while another run holds O(lock).
    type: dict
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
backups:
  description: The database backups the ledger records, oldest first.
  returned: always
  type: list
  elements: dict
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.ledger_update import (
    LEDGER_OPTIONS,
    LEDGER_REQUIRED_BY,
    LEDGER_REQUIRED_TOGETHER,
    LOCK_OPTIONS,
    LedgerUpdateError,
    update_ledger,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(LEDGER_OPTIONS, **LOCK_OPTIONS),
        required_together=LEDGER_REQUIRED_TOGETHER,
        required_by=dict(LEDGER_REQUIRED_BY, lock="lock_owner", lock_takeover_from="lock"),
        required_if=[["lock_release", True, ["lock"]]],
        mutually_exclusive=[["lock_release", "lock_takeover_from"]],
        supports_check_mode=True,
    )
    try:
        result = update_ledger(module, module.params)
    except LedgerUpdateError as e:
        module.fail_json(msg=str(e), **e.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
