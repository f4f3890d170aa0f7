# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: scripts_checkout
short_description: Find the checkout the app's own scripts deployed, and make it a release
version_added: 0.1.0
description:
  - The Flora app's EC2 user-data deploys a plain git checkout into the app directory, built in place, with a
    heredoc C(.env) beside the backend. This module lets the bootstrap adopt such a host without losing it.
  - With O(state=inspected), says whether O(root) is such a checkout (it has a C(.git) directory) and at which
    commit. A checkout with local changes to tracked files, or one that tracks a top-level
    entry the release layout needs (C(releases), C(shared), C(deps), C(repo.git), C(current), ...), fails the
    task before anything changes, saying what to do.
  - With O(state=adopted), moves the checkout's files (everything in O(root) but the release layout) into
    C(<releases_dir>/<its commit>), a release to roll back to, with the release marker; when O(live) is its commit,
    into C(<releases_dir>/.scripts-checkout-<commit>), kept but no release. The backend's C(.env) becomes a link to
    O(env_file); the scripts' file is kept beside it as C(.env.from-scripts), readable by its owner only.
  - Run O(state=adopted) only once the scripts' processes are stopped, as they run from these files.
author:
  - Flora platform team (@flora-marketplace)
options:
  root:
    description: The app directory (C(/home/ubuntu/Flora)).
    type: path
    required: true
  state:
    description: V(inspected) only reads; V(adopted) moves the checkout into the releases.
    type: str
    choices: [inspected, adopted]
    default: inspected
  releases_dir:
    description: The release directories. Required with O(state=adopted).
    type: path
  live:
    description: The commit the host runs (or is about to) from its release. Required with O(state=adopted).
    type: str
  app_dir:
    description: The backend's directory in the repository.
    type: str
    default: apps/backend
  env_file:
    description: The shared env file the backend's C(.env) links to. Required with O(state=adopted).
    type: path
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details: O(state=adopted) reports where the checkout would go and moves nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Once adopted, O(root) is no checkout any more, and the module finds nothing to do.
seealso:
  - module: flora.deploy.release_dir
"""

EXAMPLES = r"""
- name: Look for the checkout the app's scripts deployed
  flora.deploy.scripts_checkout:
    root: /home/ubuntu/Flora
  register: scripts

- name: Keep it as a release to roll back to
  flora.deploy.scripts_checkout:
    root: /home/ubuntu/Flora
    state: adopted
    releases_dir: /home/ubuntu/Flora/releases
    live: "{{ backend_release_commit }}"
    env_file: /home/ubuntu/Flora/shared/backend.env
  when: scripts.found
"""

RETURN = r"""
found:
  description: Whether O(root) holds a checkout the scripts deployed (before this call).
  returned: always
  type: bool
commit:
  description: The checkout's commit.
  returned: when RV(found)
  type: str
directory:
  description: Where the checkout's files are (or would be) after adoption.
  returned: with O(state=adopted) when RV(found)
  type: str
release:
  description: Whether RV(directory) is a release to roll back to (its commit is not the live one).
  returned: with O(state=adopted) when RV(found)
  type: bool
moved:
  description: The top-level entries moved.
  returned: with O(state=adopted) when RV(found)
  type: list
  elements: str
env_kept:
  description: Whether the scripts' own C(.env) was kept as C(.env.from-scripts).
  returned: with O(state=adopted) when RV(found)
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import MARKER, write_marker
from ansible_collections.flora.deploy.plugins.module_utils.scripts_checkout import (
    CheckoutError,
    destination,
    find_checkout,
    link_env_file,
    move_checkout,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            state=dict(type="str", choices=["inspected", "adopted"], default="inspected"),
            releases_dir=dict(type="path"),
            live=dict(type="str"),
            app_dir=dict(type="str", default="apps/backend"),
            env_file=dict(type="path"),
        ),
        required_if=[["state", "adopted", ["releases_dir", "live", "env_file"]]],
        supports_check_mode=True,
    )
    params = module.params
    try:
        checkout = find_checkout(params["root"])
    except CheckoutError as e:
        module.fail_json(msg=str(e), found=True)
    if checkout is None:
        module.exit_json(changed=False, found=False)
    result = dict(changed=False, found=True, commit=checkout.commit)
    if params["state"] == "inspected":
        module.exit_json(**result)

    target = destination(params["releases_dir"], checkout.commit, params["live"])
    is_release = checkout.commit != params["live"]
    result.update(changed=True, directory=target, release=is_release, moved=[], env_kept=False)
    if module.check_mode:
        module.exit_json(**result)
    try:
        result["moved"] = move_checkout(params["root"], target, keep=[])
        result["env_kept"] = link_env_file(os.path.join(target, params["app_dir"]), params["env_file"])
        if is_release:
            write_marker(target, checkout.commit, "scripts checkout")
            owner = os.stat(params["root"])
            os.chown(os.path.join(target, MARKER), owner.st_uid, owner.st_gid)
    except OSError as e:
        module.fail_json(msg=f"Cannot adopt the checkout in {params['root']}: {e}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
