# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: git_cache
short_description: Fetch the app's repository into a bare cache on the host and resolve a ref
version_added: 0.1.0
description:
  - Keeps a bare clone of the app's repository on the host with every branch and tag (cloned once, then fetched),
    and resolves O(ref) to a commit. Releases are exported from it; the app never runs from it.
  - The same fetch as M(flora.deploy.redeploy_preflight)'s, which runs it beside its other reads. An unknown ref
    fails the task, naming it.
author:
  - Flora platform team (@flora-marketplace)
options:
  repo:
    description: The bare clone on the host.
    type: path
    required: true
  repo_url:
    description: Where it is cloned and fetched from.
    type: str
    required: true
  ref:
    description: The branch, tag or commit to resolve.
    type: str
    required: true
  git_user:
    description:
      - Run git as this user, the owner of O(repo), with C(runuser) when the module runs as root.
      - Defaults to the user running the module.
    type: str
notes:
  - Git runs with C(GIT_TERMINAL_PROMPT=0), so a repository that asks for credentials fails instead of waiting.
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written. A branch or tag is resolved from what the remote advertises (C(git ls-remote)); a
        commit id from the cache, when there is one. RV(cloned) says whether a real run would clone the cache.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Only cloning the cache is a change; fetching into it is not.
seealso:
  - module: flora.deploy.redeploy_preflight
"""

EXAMPLES = r"""
- name: Fetch new commits and resolve the ref
  flora.deploy.git_cache:
    repo: /home/ubuntu/Flora/repo.git
    repo_url: https://github.com/flora-marketplace/Flora.git
    ref: main
    git_user: ubuntu
  register: fetched
"""

RETURN = r"""
commit:
  description: The commit O(ref) resolves to.
  returned: success
  type: str
  sample: 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
cloned:
  description: Whether O(repo) was cloned by this call.
  returned: success
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.git_cache import (
    GitCacheError,
    RemoteRef,
    git_runners,
    start_fetch,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="path", required=True),
            repo_url=dict(type="str", required=True),
            ref=dict(type="str", required=True),
            git_user=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    run, start = git_runners(module, params["git_user"])
    try:
        if module.check_mode:
            pending = RemoteRef(run, params["repo"], params["repo_url"], params["ref"])
        else:
            pending = start_fetch(run, start, params["repo"], params["repo_url"], params["ref"])
        commit, cloned = pending.result()
    except GitCacheError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=cloned, commit=commit, cloned=cloned)


if __name__ == "__main__":
    main()
