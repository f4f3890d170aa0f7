# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_activate
short_description: Make a built backend release live - switch, reload PM2, verify, check and record
version_added: 0.1.0
description:
  - Activates a release directory on the app host in one call.
  - Points O(current_link) at O(release_dir) atomically (unless O(switch=false), for a reload with a new env file).
  - Reloads the app's PM2 cluster workers all at once (O(reload_batch) at a time when set), each replaced only once
    its successor is ready, with the reload helper the C(flora.deploy.pm2) role installs in O(helpers_dir). It
    returns once every successor is ready; the old workers finish their requests and stop in the background, and
    the next reload of the app waits for them. An app that does not run as online cluster workers is started (or
    reloaded) from O(ecosystem) instead.
  - Checks that every worker runs from O(release_dir). PM2 resolves the link when a worker starts, so a worker's
    directory is what really runs, whatever the link says.
  - Runs the health and smoke checks in O(checks), retried together while the app starts, as
    M(flora.deploy.http_check) runs them.
  - With O(record), records the release as live in the release ledger, prunes old releases and releases the
    deploy lock, as M(flora.deploy.release_ledger) does. The release passed its checks by then, so a ledger that
    cannot be written does not fail the task; the error is returned as RV(record_error).
  - Warns when the running PM2 daemon was started with another C(PM2_KILL_SIGNAL) than O(kill_signal). Its reloads
    then send the app SIGINT directly, and an app whose SIGINT handler exits at once drops requests.
author:
  - Flora platform team (@flora-marketplace)
options:
  release_dir:
    description: The built release directory to make live; its name is the release's commit.
    type: path
    required: true
  current_link:
    description: The link to the live release.
    type: path
    required: true
  switch:
    description: Point O(current_link) at O(release_dir) before the reload. V(false) reloads the release that is live.
    type: bool
    default: true
  pm2_home:
    description: PM2_HOME of the PM2 daemon that runs the app.
    type: path
    required: true
  pm2_app_name:
    description: The app's name in PM2.
    type: str
    required: true
  ecosystem:
    description: The app's ecosystem file, to start it from when it does not run as online cluster workers.
    type: path
    required: true
  reload_batch:
    description:
      - Workers replaced at a time; V(0) replaces all at once.
      - Each new worker runs beside the old one until it is ready, so a smaller batch needs less memory during the
        reload and takes longer.
    type: int
    default: 0
  reload_lock_timeout:
    description: Seconds to wait for the old workers of an earlier reload to stop before this reload starts.
    type: int
    default: 600
  helpers_dir:
    description: Where the C(flora.deploy.pm2) role installed its helpers (C(pm2-reload-workers.js)).
    type: path
    default: /usr/local/lib/flora-deploy
  kill_signal:
    description:
      - The C(PM2_KILL_SIGNAL) the PM2 daemon runs with, C(SIGTERM) when the C(flora.deploy.pm2) role's
        O(flora.deploy.pm2#role:main:pm2_drain) is on, as its C(pm2-<user>) unit sets it.
        A daemon this module starts gets it; a running daemon with another one is warned about. Empty sets nothing.
    type: str
    default: SIGTERM
  checks:
    description:
      - The health and smoke checks, with the keys of O(flora.deploy.http_check#module:urls) that apply to an API.
    type: list
    elements: dict
    default: []
    suboptions:
      url:
        description: The URL to request.
        type: str
        required: true
      name:
        description: What the check is, for its failure line.
        type: str
      method:
        description: The request method.
        type: str
        default: GET
      body:
        description: The request body.
        type: str
      headers:
        description: Request headers.
        type: dict
        default: {}
      status:
        description: The expected status.
        type: int
        default: 200
  check_retries:
    description: Rounds of the checks that failed, after the first, while the app starts.
    type: int
    default: 0
  check_delay:
    description: Seconds between rounds.
    type: float
    default: 1
  check_timeout:
    description: Seconds each request may take.
    type: int
    default: 10
  record:
    description:
      - Record the release as live in the release ledger once its checks pass, with the options of
        M(flora.deploy.release_ledger) given here (the commit is the name of O(release_dir), the status V(live)).
      - With C(lock) and C(lock_owner), the deploy lock is released after the ledger is written.
    type: dict
    suboptions:
      path:
        description: The ledger file.
        type: path
        required: true
      owner:
        description: Owner of the ledger file.
        type: str
      ref:
        description: The ref the release was deployed from.
        type: str
      env_checksum:
        description: The SHA-256 of the env file the app was reloaded with.
        type: str
      releases_dir:
        description: The release directories, for O(record.prune_keep).
        type: path
      prune_keep:
        description: Release directories to keep, the live and the last good one among them.
        type: int
      deps_dir:
        description: The shared installs; those no release links to are pruned.
        type: path
      lock:
        description: The deploy lock to release once the ledger is written.
        type: path
      lock_owner:
        description: Who holds O(record.lock).
        type: str
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is switched, reloaded or recorded; the task reports the change it would make.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run reloads the app.
notes:
  - Run it as the app user, who owns the link, the ledger and the PM2 daemon (C(become_user)).
seealso:
  - module: flora.deploy.release_ledger
  - module: flora.deploy.http_check
  - module: flora.deploy.redeploy_preflight
"""

EXAMPLES = r"""
- name: Switch to the new release, reload, check and record it
  flora.deploy.release_activate:
    release_dir: /home/ubuntu/Flora/releases/3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
    current_link: /home/ubuntu/Flora/current
    pm2_home: /home/ubuntu/.pm2
    pm2_app_name: flora-backend
    ecosystem: /home/ubuntu/Flora/shared/ecosystem.config.js
    checks:
      - name: health check
        url: http://127.0.0.1:3001/api/health
      - name: Stripe webhook refuses an unsigned call
        url: http://127.0.0.1:3001/api/webhooks/stripe
        method: POST
        body: "{}"
        status: 400
    check_retries: 9
    check_delay: 2
    record:
      path: /home/ubuntu/Flora/releases.json
      ref: main
      releases_dir: /home/ubuntu/Flora/releases
      prune_keep: 5
  become: true
  become_user: ubuntu
  environment:
    PATH: /usr/local/bin:/usr/bin:/bin
"""

RETURN = r"""
switched:
  description: Whether O(current_link) was pointed at O(release_dir) (also when the task failed after that).
  returned: always
  type: bool
previous:
  description: The release O(current_link) pointed at before ('' when it was no link).
  returned: always
  type: str
workers:
  description: The directory each online worker runs in after the reload.
  returned: when the reload ran
  type: list
  elements: str
checked:
  description: What each check answered (V(url), V(status), V(seconds), V(error)).
  returned: when the checks ran
  type: list
  elements: dict
step:
  description: The step that failed (V(reload), V(workers) or V(checks)).
  returned: failure
  type: str
recorded:
  description: What recording returned (V(current), V(last_good), V(pruned), V(pruned_deps), V(lock_released)).
  returned: when O(record) is given and the ledger was written
  type: dict
record_error:
  description: Why the ledger could not be written, although the release passed its checks and serves.
  returned: when recording failed
  type: str
reload_log:
  description: What the reload helper said.
  returned: when the reload ran
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.http_check import (
    Expectation,
    check_until,
    open_url_fetch,
)
from ansible_collections.flora.deploy.plugins.module_utils.ledger_update import LedgerUpdateError, update_ledger
from ansible_collections.flora.deploy.plugins.module_utils.release_activate import (
    ActivateError,
    Pm2,
    daemon_kill_signal,
    read_log,
    reload_workers,
    switch_link,
    take_reload_lock,
    workers_elsewhere,
)

CHECK_OPTIONS = dict(
    url=dict(type="str", required=True),
    name=dict(type="str"),
    method=dict(type="str", default="GET"),
    body=dict(type="str"),
    headers=dict(type="dict", default={}),
    status=dict(type="int", default=200),
)
RECORD_OPTIONS = dict(
    path=dict(type="path", required=True),
    owner=dict(type="str"),
    ref=dict(type="str"),
    env_checksum=dict(type="str"),
    releases_dir=dict(type="path"),
    prune_keep=dict(type="int"),
    deps_dir=dict(type="path"),
    lock=dict(type="path"),
    lock_owner=dict(type="str"),
)


def run_checks(module, result):
    params = module.params
    expectations = [
        Expectation(
            url=item["url"],
            status=item["status"],
            method=item["method"].upper(),
            body=item["body"].encode("utf-8") if item["body"] is not None else None,
            headers=item["headers"],
            name=item["name"],
        )
        for item in params["checks"]
    ]
    fetch = open_url_fetch(params["check_timeout"], agent="flora.deploy.release_activate")
    seen, failures, attempts = check_until(
        expectations, fetch, workers=8, retries=params["check_retries"], delay=params["check_delay"]
    )
    result["checked"] = [
        {"url": e.url, "name": e.name, "status": s.status, "seconds": round(s.seconds, 3), "error": s.error}
        for e, s in zip(expectations, seen)
    ]
    if failures:
        raise ActivateError("checks", f"checks failed after {attempts} round(s): " + "; ".join(failures))


def record_release(module, release_dir):
    record = module.params["record"]
    params = dict(
        record,
        commit=os.path.basename(release_dir.rstrip("/")),
        status="live",
        reason=None,
        lock_release=bool(record["lock"]),
    )
    return update_ledger(module, params)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            release_dir=dict(type="path", required=True),
            current_link=dict(type="path", required=True),
            switch=dict(type="bool", default=True),
            pm2_home=dict(type="path", required=True),
            pm2_app_name=dict(type="str", required=True),
            ecosystem=dict(type="path", required=True),
            reload_batch=dict(type="int", default=0),
            reload_lock_timeout=dict(type="int", default=600),
            helpers_dir=dict(type="path", default="/usr/local/lib/flora-deploy"),
            kill_signal=dict(type="str", default="SIGTERM"),
            checks=dict(type="list", elements="dict", default=[], options=CHECK_OPTIONS),
            check_retries=dict(type="int", default=0),
            check_delay=dict(type="float", default=1),
            check_timeout=dict(type="int", default=10),
            record=dict(
                type="dict",
                options=RECORD_OPTIONS,
                required_together=[["releases_dir", "prune_keep"], ["lock", "lock_owner"]],
            ),
        ),
        supports_check_mode=True,
    )
    params = module.params
    release_dir = params["release_dir"].rstrip("/")
    if not os.path.isfile(os.path.join(release_dir, ".flora-release")):
        module.fail_json(msg=f"{release_dir} is not a built release (it has no .flora-release marker)")
    result = dict(changed=True, switched=False, previous="")
    if module.check_mode:
        module.exit_json(**result)

    env = dict(os.environ, PM2_HOME=params["pm2_home"])
    if params["kill_signal"]:
        env["PM2_KILL_SIGNAL"] = params["kill_signal"]
        running = daemon_kill_signal(params["pm2_home"])
        if running is not None and running != params["kill_signal"]:
            module.warn(
                f"The PM2 daemon runs with PM2_KILL_SIGNAL={running or '(unset, so SIGINT)'}, not "
                f"{params['kill_signal']}: it was not started by its pm2 systemd unit. Its reloads signal the old "
                "workers without letting their requests finish first, and an app that exits at once on SIGINT "
                "drops requests. At a quiet moment, stop it (pm2 kill, as the app user) and start the unit "
                "(systemctl restart pm2-<user>): the app is down meanwhile."
            )
    log_path = os.path.join(params["pm2_home"], f"reload-{params['pm2_app_name']}.log")
    try:
        pm2 = Pm2.find(params["helpers_dir"], env)
        lock_fd = take_reload_lock(
            os.path.join(params["pm2_home"], f"reload-{params['pm2_app_name']}.lock"),
            params["pm2_app_name"],
            params["reload_lock_timeout"],
        )
        try:
            if params["switch"]:
                result["previous"] = switch_link(params["current_link"], release_dir)
                result["switched"] = True

            def run(argv, run_env):
                return module.run_command(argv, environ_update=run_env)

            workers = reload_workers(
                pm2, params["pm2_app_name"], params["ecosystem"], params["reload_batch"], lock_fd, log_path, run
            )
        finally:
            os.close(lock_fd)
        result["workers"] = workers
        elsewhere = workers_elsewhere(workers, release_dir)
        if elsewhere:
            raise ActivateError(
                "workers",
                f"PM2 workers of {params['pm2_app_name']} run from {', '.join(elsewhere)}, not from {release_dir}",
            )
        run_checks(module, result)
    except ActivateError as e:
        result["reload_log"] = read_log(log_path).splitlines()
        module.fail_json(msg=str(e), step=e.step, **result)
    result["reload_log"] = read_log(log_path).splitlines()

    if params["record"]:
        try:
            recorded = record_release(module, release_dir)
        except LedgerUpdateError as e:
            result["record_error"] = str(e)
        else:
            result["recorded"] = {
                key: recorded.get(key) for key in ("current", "last_good", "pruned", "pruned_deps", "lock_released")
            }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
