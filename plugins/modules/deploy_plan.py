# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_plan
short_description: Decide which side of Flora a target commit needs redeployed
version_added: 0.1.0
description:
  - Implements the deployment note's "When To Redeploy" table from the git changes between the commit each side
    runs and the target commit, and from the env values that changed for each side.
  - Frontend source, assets or build-time env values need the frontend only. API code, the Prisma schema or
    migrations, backend dependencies and the lockfile need the backend (with migrations when the schema or
    migrations changed). Workspace-wide files such as shared types, the root C(package.json) or C(tsconfig) need
    both, backend first. Backend env values alone need an env refresh and a reload, no build. Anything else
    needs nothing.
  - A rename counts for both its old and its new path, a deletion for the deleted path.
  - Each side is judged from its own live commit, so a frontend that was published from an older commit than
    the backend runs is still brought up to date.
  - When a side has nothing live, or its live commit is not in O(repo) (a shallow clone), that side is deployed
    in full and the plan says why.
  - Read-only; never reports a change.
author:
  - Flora platform team (@flora-marketplace)
options:
  repo:
    description: A clone of the app (a working copy or a bare repository) holding the target and the live commits.
    type: path
    required: true
  target:
    description: The ref or commit to deploy.
    type: str
    default: HEAD
  backend_live:
    description:
      - The commits the backend hosts run (each release ledger's C(current)), one entry per host; an empty entry
        for a host with nothing live, which is then deployed in full.
      - The backend is judged on the changes from every distinct live commit, so a fleet left half-way by an
        interrupted rolling redeploy is completed.
      - An empty list plans nothing for the backend (there are no backend hosts).
    type: list
    elements: str
    default: []
  frontend_live:
    description:
      - The commit the published frontend was built from (C(commit) in its publish manifest's C(source), see
        M(flora.deploy.s3_publish)); empty when unknown, which deploys the frontend in full.
    type: str
  backend_env_changed:
    description: Keys of the backend env file whose values differ from Parameter Store (M(flora.deploy.ssm_env) in check mode).
    type: list
    elements: str
    default: []
  frontend_env_changed:
    description: Keys of the frontend's build-time env whose values changed.
    type: list
    elements: str
    default: []
  sides:
    description: The sides to plan; a side left out gets action C(none).
    type: list
    elements: str
    choices: [backend, frontend]
    default: [backend, frontend]
  rules:
    description:
      - Path rules checked before the built-in ones; the first rule whose glob matches a changed path decides.
      - In a glob, C(*) and C(?) stay inside one directory and C(**) spans directories.
      - Paths no rule matches need nothing.
    type: list
    elements: dict
    default: []
    suboptions:
      glob:
        description: Path glob relative to the repository root.
        type: str
        required: true
      effect:
        description: What a change there needs.
        type: str
        required: true
        choices: [ignore, frontend, backend, migrations, shared]
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Plan the deploy of main from the app checkout
  flora.deploy.deploy_plan:
    repo: /srv/Flora
    target: main
    backend_live: "{{ [ledger.current | default('', true)] }}"
    frontend_live: "{{ published.source.commit }}"
    backend_env_changed: "{{ backend_env.keys_changed + backend_env.keys_added + backend_env.keys_removed }}"
  register: plan

- name: Treat the mobile app as irrelevant and the email templates as backend code
  flora.deploy.deploy_plan:
    repo: /srv/Flora
    backend_live: [3f2a9c1]
    frontend_live: 3f2a9c1
    rules:
      - glob: apps/mobile/**
        effect: ignore
      - glob: templates/email/**
        effect: backend
"""

RETURN = r"""
target_commit:
  description: The full commit O(target) resolves to.
  returned: always
  type: str
backend:
  description: What the backend needs.
  returned: always
  type: dict
  contains:
    action:
      description: C(none), C(refresh) (env file and reload, no build) or C(release) (build and switch).
      type: str
    migrations:
      description: Whether the Prisma schema or migrations changed.
      type: bool
    reasons:
      description: The changed paths and env keys behind the action (at most 20 paths are listed).
      type: list
      elements: str
frontend:
  description: What the frontend needs.
  returned: always
  type: dict
  contains:
    action:
      description: C(none) or C(publish) (build and publish).
      type: str
    reasons:
      description: The changed paths and env keys behind the action.
      type: list
      elements: str
order:
  description: The sides to deploy, in order (backend first).
  returned: always
  type: list
  elements: str
  sample: [backend, frontend]
ignored:
  description: Changed paths that need nothing.
  returned: always
  type: list
  elements: str
summary:
  description: The plan in one line.
  returned: always
  type: str
  sample: backend release with migrations, then frontend build and publish
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.deploy_plan import (
    EFFECTS,
    PlanError,
    compile_rules,
    parse_name_status,
    plan_deploy,
)


class Git:
    def __init__(self, module, repo):
        self.module = module
        self.repo = repo
        self.git = module.get_bin_path("git", required=True)

    def run(self, *args):
        return self.module.run_command([self.git, "-C", self.repo, *args], environ_update={"LC_ALL": "C"})

    def commit_of(self, ref):
        rc, out = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")[:2]
        return out.strip() if rc == 0 else None

    def changes(self, base, target):
        rc, out, err = self.run("diff", "--name-status", "-z", "-M", "--no-ext-diff", base, target, "--")
        if rc != 0:
            self.module.fail_json(msg=f"git diff {base} {target} failed in {self.repo}: {err.strip()}")
        return parse_name_status(out)


def side_changes(git, side, lives, target_commit, cache):
    """(changes from every live commit, reason when one cannot be compared)."""
    merged = {}
    for live in dict.fromkeys(lives):
        if not live:
            return None, f"no {side} commit is live" + (" on some hosts" if len(lives) > 1 else "")
        base = git.commit_of(live)
        if base is None:
            return None, f"the live {side} commit {live} is not in {git.repo} (a shallow clone?): deploying in full"
        if base not in cache:
            cache[base] = git.changes(base, target_commit)
        merged.update(dict.fromkeys(cache[base]))
    return list(merged), None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="path", required=True),
            target=dict(type="str", default="HEAD"),
            backend_live=dict(type="list", elements="str", default=[]),
            frontend_live=dict(type="str"),
            sides=dict(type="list", elements="str", choices=["backend", "frontend"], default=["backend", "frontend"]),
            backend_env_changed=dict(type="list", elements="str", default=[], no_log=False),
            frontend_env_changed=dict(type="list", elements="str", default=[], no_log=False),
            rules=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    glob=dict(type="str", required=True),
                    effect=dict(type="str", required=True, choices=list(EFFECTS)),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    params = module.params
    git = Git(module, params["repo"])
    checked = git.run("rev-parse", "--git-dir")
    if checked[0] != 0:
        module.fail_json(msg=f"{params['repo']} is not a git repository: {checked[2].strip()}")
    target_commit = git.commit_of(params["target"])
    if target_commit is None:
        module.fail_json(msg=f"Target {params['target']} is not a commit in {params['repo']}")

    try:
        rules = compile_rules(params["rules"])
        cache = {}
        sides = params["sides"]
        backend_changes, backend_reason = [], None
        frontend_changes, frontend_reason = [], None
        if "backend" in sides and params["backend_live"]:
            backend_changes, backend_reason = side_changes(git, "backend", params["backend_live"], target_commit, cache)
        if "frontend" in sides:
            frontend_changes, frontend_reason = side_changes(
                git, "frontend", [params["frontend_live"] or ""], target_commit, cache
            )
        plan = plan_deploy(
            backend_changes,
            frontend_changes,
            backend_env_changed=params["backend_env_changed"],
            frontend_env_changed=params["frontend_env_changed"],
            rules=rules,
            backend_unknown_reason=backend_reason,
            frontend_unknown_reason=frontend_reason,
            sides=sides,
        )
    except PlanError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, target_commit=target_commit, **plan.to_dict())


if __name__ == "__main__":
    main()
