# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redeploy_preflight
short_description: Start a backend redeploy in one round trip - lock, ledger, target commit and env file
version_added: 0.1.0
description:
  - Everything a redeploy must know before it builds, done on the host in one call. Each step is also a module
    or task of its own; together they save a round trip per step, which is most of a redeploy that has nothing
    to do.
  - Takes the deploy lock O(lock) for O(lock_owner), as M(flora.deploy.release_ledger) does; when another run
    holds it, stops there and returns the holder as RV(lock_holder).
  - Reads the release ledger O(ledger) and the directory O(current_link) points at. When O(current_link) is not
    a link (a host that was never deployed), stops there and returns an empty RV(linked).
  - With O(ref), fetches every branch and tag into the bare clone O(repo) (cloning O(repo_url) first when there is
    none), as O(git_user), and resolves O(ref) to a commit. An unknown ref fails the task.
  - With O(env), renders the env file from Parameter Store with the options of M(flora.deploy.ssm_env). The fetch
    runs meanwhile, and the file is written only once O(ref) is resolved.
  - Returns the plan (RV(plan)) of a redeploy with O(ref), or of a rollback with O(action=rollback).
  - With O(release_lock_if_unchanged), releases the lock again when there is nothing to deploy (RV(unchanged)),
    that is when the commit is live, the ledger agrees, the env file did not change, and the app was reloaded
    with it (RV(env_live)).
  - Any failure after the lock is taken releases it before the task fails. Nothing live changes here, as the cache
    is not what the app runs and the env file is read by the app only when it is reloaded.
author:
  - Flora platform team (@flora-marketplace)
options:
  ledger:
    description: The release ledger file (see M(flora.deploy.release_ledger)).
    type: path
    required: true
  current_link:
    description: The link that points at the live release directory (for example C(/home/ubuntu/Flora/current)).
    type: path
    required: true
  releases_dir:
    description:
      - The release directories; a release is built when its directory holds the C(.flora-release) marker.
      - Defaults to C(releases) beside O(current_link).
    type: path
  lock:
    description:
      - The deploy lock, a directory created atomically; see O(flora.deploy.release_ledger#module:lock).
      - In check mode the lock is neither taken nor checked.
    type: path
    required: true
  lock_owner:
    description: Who takes the lock, written to its C(owner) file.
    type: str
    required: true
  lock_timeout:
    description: Seconds to wait for another holder of O(lock).
    type: int
    default: 0
  lock_lease:
    description: Seconds after which a lock is considered left by a run that died, and is taken over with a warning.
    type: int
    default: 1800
  lock_takeover_from:
    description: Take O(lock) from this holder, known to have died. The lock is left alone when someone else holds it by then.
    type: str
  release_lock_if_unchanged:
    description:
      - Release the lock when RV(unchanged) is true, so a redeploy with nothing to do needs no other call.
    type: bool
    default: false
  action:
    description:
      - V(deploy) plans deploying O(ref) (fetched and resolved) with the env file O(env).
      - V(rollback) plans going back to O(rollback_to), or the ledger's last good release, which must be built; it
        fetches nothing and renders no env file. Without such a release the task fails, naming why.
    type: str
    choices: [deploy, rollback]
    default: deploy
  rollback_to:
    description: With O(action=rollback), the commit to go back to; unset means the ledger's last good release.
    type: str
  migrate:
    description: Whether the plan may apply migrations at all.
    type: bool
    default: true
  migration_paths:
    description:
      - Git glob patterns of the migration files. The plan applies migrations when the target commit adds or changes
        a matching file since the live release (C(git diff) in O(repo)).
      - Unset applies them with every new release.
    type: list
    elements: str
  repo:
    description: The bare clone of the app's repository on the host. Required with O(ref).
    type: path
  repo_url:
    description: Where the repository is cloned and fetched from. Required with O(ref).
    type: str
  ref:
    description: The branch, tag or commit to resolve.
    type: str
  git_user:
    description:
      - Run git as this user, the owner of O(repo), with C(runuser) when the module runs as root.
      - Defaults to the user running the module.
    type: str
  env:
    description:
      - The env file to render, with the options of M(flora.deploy.ssm_env) (O(flora.deploy.ssm_env#module:dest),
        O(flora.deploy.ssm_env#module:paths), O(flora.deploy.ssm_env#module:literals) and the others, under the
        same names and with the same defaults). Region and credentials are this module's.
    type: dict
requirements:
  - boto3 >= 1.26.0 and botocore >= 1.29.0 on the host, as Debian 12's C(python3-boto3) provides (older releases get a
    warning; amazon.aws's general minimum, 1.34, does not apply to the Parameter Store calls made here)
notes:
  - Git runs with C(GIT_TERMINAL_PROMPT=0), so a repository that asks for credentials fails instead of waiting.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written and the lock is not taken. The ref is resolved from what the remote advertises
        (C(git ls-remote)), or from the cache for a commit id; migrations are counted when the cache has both
        commits, else a real run would apply them.
  diff_mode:
    support: full
    details: The env file's keys added, removed and changed, with their values masked.
  idempotent:
    support: full
seealso:
  - module: flora.deploy.release_ledger
  - module: flora.deploy.ssm_env
"""

EXAMPLES = r"""
- name: Take the deploy lock, resolve the target commit and render the env file
  flora.deploy.redeploy_preflight:
    ledger: /home/ubuntu/Flora/releases.json
    current_link: /home/ubuntu/Flora/current
    lock: /home/ubuntu/Flora/.deploy.lock
    lock_owner: "{{ inventory_hostname }}:{{ 2147483647 | random }}"
    release_lock_if_unchanged: true
    repo: /home/ubuntu/Flora/repo.git
    repo_url: https://github.com/flora-marketplace/Flora.git
    ref: main
    git_user: ubuntu
    region: ap-southeast-2
    env:
      dest: /home/ubuntu/Flora/shared/backend.env
      owner: ubuntu
      group: ubuntu
      paths:
        - /flora/prod
      required:
        - STRIPE_SECRET_KEY
  register: preflight
"""

RETURN = r"""
lock_holder:
  description: Who holds the lock when another run does (nothing else was done); empty when this call took it.
  returned: always
  type: str
lock_owner:
  description:
    - The O(lock_owner) this call took the lock for, or would have. Later calls that release the lock, or
      record a release under it, name the same owner.
  returned: always
  type: str
current:
  description: The commit the ledger records as live.
  returned: always
  type: str
last_good:
  description: The newest release that served successfully other than the current one.
  returned: always
  type: str
releases:
  description: The ledger's releases (commit, ref, status, times).
  returned: always
  type: list
  elements: dict
linked:
  description: Name of the release directory O(current_link) points at; empty when it is not a link.
  returned: always
  type: str
commit:
  description: The commit O(ref) resolves to.
  returned: when O(ref) is given, the lock was taken (or in check mode) and RV(linked) is not empty
  type: str
  sample: 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
cloned:
  description: Whether O(repo) was cloned by this call.
  returned: when RV(commit) is
  type: bool
env:
  description:
    - What M(flora.deploy.ssm_env) returns for the env file (V(changed), V(keys), V(keys_added), V(keys_removed),
      V(keys_changed), V(checksum) and the counts). Never the values.
  returned: when O(env) is given, the lock was taken (or in check mode) and RV(linked) is not empty
  type: dict
env_live:
  description:
    - Whether the running app was last reloaded with this env file, as the ledger's C(env_checksum) records
      (O(flora.deploy.release_ledger#module:env_checksum)). True when the ledger records none.
    - False after a run that rendered a changed env file and died before reloading the app, even though the file
      is not changed again.
  returned: when RV(env) is
  type: bool
plan:
  description:
    - What the run does, decided from what the host runs.
    - V(action) is V(release) (switch to V(commit), after building it when V(build), applying its migrations when
      V(migrate)), V(reload) (the live release, with a new env file) or V(none).
    - V(live) is the release the link points at, V(fallback) the one a failed release goes back to, V(summary) and
      V(notes) say what the run does and why.
  returned: when O(ref) is given or O(action=rollback), the lock was taken (or in check mode) and RV(linked) is not empty
  type: dict
  sample:
    action: release
    commit: 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
    live: 0d4c6f7e2b9a8c1d3e5f7a9b0c2d4e6f8a1b3c5d
    build: true
    migrate: false
    switch: true
    fallback: 0d4c6f7e2b9a8c1d3e5f7a9b0c2d4e6f8a1b3c5d
    summary: build main (3f1c2a9d8e7b), switch from 0d4c6f7e2b9a and reload
    notes:
      - "no migration changed since 0d4c6f7e2b9a: no migrations run"
checkout:
  description: Whether the app directory holds a checkout the app's scripts deployed (C(.git)), to be adopted by a bootstrap.
  returned: always
  type: bool
unchanged:
  description:
    - The plan is V(none). For a redeploy - the commit is live (the link and the ledger agree), the env file did
      not change, and RV(env_live) is true.
  returned: always
  type: bool
lock_released:
  description: Whether this call released the lock again (O(release_lock_if_unchanged), a host never deployed, or a failure).
  returned: always
  type: bool
"""

import atexit
import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.deploy_lock import release_lock
from ansible_collections.flora.deploy.plugins.module_utils.git_cache import (
    GitCacheError,
    RemoteRef,
    git_runners,
    start_fetch,
)
from ansible_collections.flora.deploy.plugins.module_utils.ledger_access import (
    link_target_name,
    read_ledger_for_module,
    take_lock_for_module,
)
from ansible_collections.flora.deploy.plugins.module_utils.module_exit import exit_json_without_final_collection
from ansible_collections.flora.deploy.plugins.module_utils.redeploy_decision import (
    DecisionError,
    HostState,
    changed_migrations,
    plan_redeploy,
    plan_rollback,
)
from ansible_collections.flora.deploy.plugins.module_utils.release_ledger import last_good
from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import is_built
from ansible_collections.flora.deploy.plugins.module_utils.ssm_env_file import (
    ENV_FILE_ARGUMENT_SPEC,
    ENV_FILE_REQUIRED_ONE_OF,
    check_sdk,
    empty_sources_problem,
    render_env_from_ssm,
)


def env_options(module):
    """O(env) checked against ssm_env's options, its secret values masked from here on."""
    validator = ArgumentSpecValidator(ENV_FILE_ARGUMENT_SPEC, required_one_of=ENV_FILE_REQUIRED_ONE_OF)
    validated = validator.validate(module.params["env"])
    module.no_log_values.update(validated._no_log_values)
    if validated.error_messages:
        module.fail_json(msg="env: " + "; ".join(validated.error_messages))
    problem = empty_sources_problem(validated.validated_parameters)
    if problem:
        module.fail_json(msg=f"env: {problem}")
    return validated.validated_parameters


def built_releases(releases_dir: str) -> frozenset[str]:
    """The release directories that are built (their marker exists)."""
    try:
        names = os.listdir(releases_dir)
    except FileNotFoundError:
        return frozenset()
    return frozenset(name for name in names if not name.startswith(".") and is_built(os.path.join(releases_dir, name)))


def migrations_changed(module, run_git, live: str, target: str) -> list[str] | None:
    """The migration files the target changes since the live commit; None when git cannot tell."""
    patterns = module.params["migration_paths"]
    if patterns is None:
        return None
    rc, out, _err = run_git(
        ["git", f"--git-dir={module.params['repo']}", "diff", "--name-status", "-z", "-M", live, target, "--"]
    )
    return changed_migrations(out, patterns) if rc == 0 else None


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            ledger=dict(type="path", required=True),
            current_link=dict(type="path", required=True),
            releases_dir=dict(type="path"),
            lock=dict(type="path", required=True),
            lock_owner=dict(type="str", required=True),
            lock_timeout=dict(type="int", default=0),
            lock_lease=dict(type="int", default=1800),
            lock_takeover_from=dict(type="str"),
            release_lock_if_unchanged=dict(type="bool", default=False),
            action=dict(type="str", choices=["deploy", "rollback"], default="deploy"),
            rollback_to=dict(type="str"),
            repo=dict(type="path"),
            repo_url=dict(type="str"),
            ref=dict(type="str"),
            git_user=dict(type="str"),
            migrate=dict(type="bool", default=True),
            migration_paths=dict(type="list", elements="str"),
            env=dict(type="dict"),
        ),
        required_by={"ref": ["repo", "repo_url"]},
        supports_check_mode=True,
        # The host's boto3 is checked against what these calls need (check_sdk), not amazon.aws's minimum.
        check_boto3=False,
    )
    params = module.params
    deploying = params["action"] == "deploy"
    env = env_options(module) if params["env"] is not None and deploying else None
    run_git, start_git = git_runners(module, params["git_user"])
    releases_dir = params["releases_dir"] or os.path.join(os.path.dirname(params["current_link"]), "releases")

    lock_holder = ""
    if not module.check_mode:
        lock_holder = take_lock_for_module(module)
    holds_lock = not module.check_mode and not lock_holder
    _text, ledger = read_ledger_for_module(
        module, params["ledger"], params["lock"] if holds_lock else None, params["lock_owner"]
    )
    recorded_env = ledger.get("env_checksum")
    result = dict(
        changed=False,
        lock_holder=lock_holder,
        lock_owner=params["lock_owner"],
        current=ledger.get("current"),
        last_good=last_good(ledger, exclude=ledger.get("current")),
        releases=ledger["releases"],
        linked=link_target_name(params["current_link"]),
        checkout=os.path.isdir(os.path.join(os.path.dirname(params["current_link"]), ".git")),
        unchanged=False,
        lock_released=False,
    )
    if lock_holder or not result["linked"]:
        if holds_lock and not result["linked"]:
            result["lock_released"] = release_lock(params["lock"], params["lock_owner"])
        exit_json_without_final_collection(module, **result)

    # The fetch runs while Parameter Store is read. A failure stops it, then releases the lock, so a failed task
    # leaves neither a git process nor the lock behind (the play that took the lock stops at this task).
    fetch = None
    fail_json = module.fail_json

    def stop_then_fail(**kwargs):
        if fetch is not None:
            fetch.cancel()
        if holds_lock:
            release_lock(params["lock"], params["lock_owner"])
            kwargs["lock_released"] = True
        fail_json(**kwargs)

    module.fail_json = stop_then_fail
    # Only now: a host with no release to redeploy (never bootstrapped, or deployed by the app's scripts) has no
    # boto3 yet, and the caller says what to do about the release first.
    if env is not None:
        check_sdk(module)

    def resolve_ref():
        try:
            commit, cloned = fetch.result()
        except GitCacheError as e:
            module.fail_json(msg=str(e))
        result.update(changed=cloned, commit=commit, cloned=cloned)

    if params["ref"] is not None and deploying and module.check_mode:
        fetch = RemoteRef(run_git, params["repo"], params["repo_url"], params["ref"])
    elif params["ref"] is not None and deploying:
        try:
            fetch = start_fetch(run_git, start_git, params["repo"], params["repo_url"], params["ref"])
        except GitCacheError as e:
            module.fail_json(msg=str(e))
        # Also stopped when the module ends on an unexpected error.
        atexit.register(fetch.cancel)
    env_changed, env_live = False, True
    if env is not None:
        # The env file is written only once the ref is resolved: a failed fetch or an unknown ref changes nothing.
        rendered = render_env_from_ssm(module, env, before_write=resolve_ref if fetch is not None else None)
        diff = rendered.pop("diff", None)
        if diff is not None:
            result["diff"] = diff
        env_changed, env_live = rendered["changed"], recorded_env in (None, rendered["checksum"])
        result.update(changed=result["changed"] or rendered["changed"], env=rendered, env_live=env_live)
    elif fetch is not None:
        resolve_ref()

    host = HostState(
        linked=result["linked"],
        current=result["current"],
        last_good=result["last_good"],
        built=built_releases(releases_dir),
    )
    plan = None
    if not deploying:
        try:
            plan = plan_rollback(params["rollback_to"], host, releases_dir)
        except DecisionError as e:
            module.fail_json(msg=str(e))
        result["commit"] = plan.commit
    elif "commit" in result:
        migrations = None
        if result["linked"] != result["commit"] and params["migrate"]:
            migrations = migrations_changed(module, run_git, result["linked"], result["commit"])
        plan = plan_redeploy(
            result["commit"], params["ref"], host, env_changed, env_live, migrations, params["migrate"]
        )
    if plan is not None:
        result["plan"] = plan.as_dict()
        result["unchanged"] = plan.action == "none"
    if result["unchanged"] and params["release_lock_if_unchanged"] and holds_lock:
        result["lock_released"] = release_lock(params["lock"], params["lock_owner"])
    exit_json_without_final_collection(module, **result)


if __name__ == "__main__":
    main()
