"""playbooks/redeploy_backend.yml and rollback_backend.yml on the bootstrapped systemd test host.

The fixture app behaves as the real Flora backend does: it never sends PM2 a ready message, and its SIGINT
handler exits at once. Each test puts the release it starts from live itself (put_live), so any test runs alone,
and reads what happened from the task results (the ansible.posix.json callback), the host's link, ledger, files
and processes, and PM2's own log.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from tests.hosts.conftest import HOST, wait_for_health
from tests.support import hostside, localaws, stack
from tests.support.load import SteadyLoad
from tests.support.memory import MemoryWatch
from tests.support.stack import PlaybookRun, playbook_command, playbook_run

HEALTH = "http://127.0.0.1:3001/api/health"
ROOT = "/home/ubuntu/Flora"
PM2 = "PM2_HOME=/home/ubuntu/.pm2 PATH=/usr/local/bin:$PATH pm2"
PM2_LOG = "/home/ubuntu/.pm2/pm2.log"
ACTIVATE = "Switch, reload PM2 without dropping requests, verify the workers, check and record"
BUILD = "Unpack, install and build the commit unless its release is built"


def host_exec(*cmd: str) -> str:
    return stack.host_exec(HOST, *cmd)


def live_commit() -> str:
    return host_exec("readlink", f"{ROOT}/current").rsplit("/", 1)[-1]


def health_message() -> str:
    return json.loads(host_exec("curl", "-sf", HEALTH))["message"]


def ledger() -> dict:
    return json.loads(host_exec("cat", f"{ROOT}/releases.json"))


def ledger_status(commit: str) -> str:
    return next(r["status"] for r in ledger()["releases"] if r["commit"] == commit)


def locked() -> bool:
    return bool(host_exec("sh", "-c", f"ls -d {ROOT}/.deploy.lock 2>/dev/null || true"))


def shared_install(commit: str) -> str:
    """The shared install a release links its virtual store to."""
    return host_exec("readlink", f"{ROOT}/releases/{commit}/node_modules/.pnpm").removesuffix("/.pnpm")


def deps_dirs() -> list[str]:
    """The shared installs on the host, set-aside ones aside."""
    return sorted(f"{ROOT}/deps/{name}" for name in host_exec("ls", f"{ROOT}/deps").split())


def app_pids() -> str:
    return host_exec("sh", "-c", "pgrep -u ubuntu -f 'dist/index.js' | sort")


def psql(sql: str, port: int) -> str:
    """A query against the test database, as its owner, from the controller."""
    env = dict(os.environ, PGPASSWORD=localaws.FLORA_SECURE_PARAMETERS["db_password"])
    user = localaws.FLORA_STRING_PARAMETERS["db_username"]
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "flora_db", "-tAc", sql],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def pm2_log_lines() -> int:
    return int(host_exec("sh", "-c", f"wc -l < {PM2_LOG}"))


def pm2_reload_events(since: int) -> list[str]:
    """The PM2 daemon's reload events logged after line `since`: starting, listening, stopping."""
    events = []
    for line in host_exec("tail", "-n", f"+{since + 1}", PM2_LOG).splitlines():
        if match := re.search(r"App \[flora-backend:(\d+)\] starting", line):
            events.append(f"start {match[1]}")
        elif "-reload- New worker listening" in line:
            events.append("listening")
        elif match := re.search(r"Stopping app:flora-backend id:_old_(\d+)", line):
            events.append(f"stop {match[1]}")
    return events


def unlisted_workers() -> set[str]:
    """App processes PM2 does not list, once the old workers of the last reload had time to stop."""
    deadline = time.monotonic() + 30
    while True:
        running = set(host_exec("sh", "-c", "pgrep -u ubuntu -f 'apps/backend/dist/index.js' || true").split())
        listed = {str(p["pid"]) for p in json.loads(host_exec("su", "-", "ubuntu", "-c", f"{PM2} jlist"))}
        if running <= listed or time.monotonic() > deadline:
            return running - listed
        time.sleep(0.5)


def redeploy(services, ref: str, *extra: str) -> PlaybookRun:
    return playbook_run(services, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={ref}", *extra)


def put_live(services, ref: str) -> str:
    """The state a test starts from: ``ref`` live, with the env file Parameter Store gives now."""
    run = redeploy(services, ref)
    assert run.rc == 0, run
    commit = services["commits"].get(ref) or live_commit()
    assert live_commit() == commit and ledger()["current"] == commit
    return commit


def new_branch(services, base: str, changes: dict[str, str | None], message: str) -> tuple[str, str]:
    """A branch of its own for a test: ``base`` with ``changes``; returns (branch, commit)."""
    branch = f"test-{uuid.uuid4().hex[:8]}"
    commit = hostside.push_commit(services["origin"], base, branch, changes, message)
    services["commits"][branch] = commit
    return branch, commit


def with_health_message(services, base: str, message: str) -> dict[str, str]:
    source = hostside.source_of(services["origin"], base, "apps/backend/src/index.ts")
    return {"apps/backend/src/index.ts": re.sub(r'RELEASE_MESSAGE = "[^"]*"', f'RELEASE_MESSAGE = "{message}"', source)}


@pytest.fixture(scope="module")
def host(bootstrapped_host):
    return bootstrapped_host


def host_state() -> dict:
    """What a check run must leave alone: the link, the ledger, the release directories, the env file, the workers."""
    return {
        "live": live_commit(),
        "ledger": ledger(),
        "releases": host_exec("ls", "-a", f"{ROOT}/releases"),
        "env": host_exec("sha256sum", f"{ROOT}/shared/backend.env"),
        "workers": app_pids(),
        # No lock directory, nor anything else, appears beside the releases.
        "root_entries": host_exec("ls", "-a", ROOT),
    }


def test_check_mode_reports_the_plan_and_changes_nothing(host):
    main = put_live(host, "main")
    before = host_state()

    checked = redeploy(host, "v2", "--check", "--diff")

    assert checked.rc == 0, checked
    said = checked.result("Say what this run does")
    assert said["changed"]
    assert re.match(
        rf"Would (build|use the built release of) v2 \({host['commits']['v2'][:12]}\), switch from {main[:12]} "
        rf"and reload; no migration changed since {main[:12]}: no migrations run$",
        said["msg"],
    ), said["msg"]
    assert checked.ran("Take the deploy lock, resolve the ref, render the env file and decide")
    assert not checked.results(BUILD)
    assert not checked.results(ACTIVATE)
    assert host_state() == before

    nothing = redeploy(host, "main", "--check")
    assert nothing.rc == 0, nothing
    assert nothing.changed == 0
    assert (
        nothing.result("Report that there is nothing to do")["msg"]
        == f"Nothing to do: {main[:12]} is live with this env file"
    )


def test_a_new_commit_is_served_without_dropping_requests_though_the_app_exits_at_once(host):
    main = put_live(host, "main")
    v2 = host["commits"]["v2"]
    log_start = pm2_log_lines()

    with SteadyLoad(HEALTH, interval=0.005, threads=4) as load:
        run = redeploy(host, "v2")

    assert run.rc == 0, run
    assert run.changed > 0
    assert load.sent > 200
    assert load.failures == []
    assert health_message() == "Flora backend v2 is running"
    assert (live_commit(), ledger()["current"], ledger_status(main)) == (v2, v2, "previous")
    activated = run.result(ACTIVATE)
    assert activated["switched"] and activated["previous"] == main
    assert activated["workers"] == [f"{ROOT}/releases/{v2}/apps/backend"] * 2
    assert activated["recorded"]["lock_released"] and not locked()
    # The helper saw no ready message (the app sends none): each new worker counted as ready once it listened.
    assert sum("replaced" in line for line in activated["reload_log"]) == 2
    assert not any("sent ready" in line for line in activated["reload_log"])
    # Both workers are replaced together; each new one counts as ready once it listens (the app sends no ready
    # message), and each old one stops only after that.
    events = pm2_reload_events(log_start)
    assert sorted(events[:2]) == ["start 0", "start 1"], events
    assert events.count("listening") == 2 and sorted(e for e in events if e.startswith("stop")) == ["stop 0", "stop 1"]
    for index, event in enumerate(events):
        if event.startswith("stop"):
            assert events[:index].count("listening") >= sum(e.startswith("stop") for e in events[: index + 1]), events
    assert unlisted_workers() == set()
    # The same dependencies as main: the shared install is linked, nothing installed, pnpm left as it is.
    built = run.result(BUILD)
    assert built["deps_linked"] and not built["installed"]
    assert [step["name"] for step in built["steps"]] == ["Unpack", "Build"]
    assert not run.ran("Keep pnpm matching the app's packageManager")
    # The builds' tools keep their compiled code in the app user's own compile cache.
    assert host_exec("find", f"{ROOT}/.cache/node-compile-cache", "-type", "f", "-user", "ubuntu")
    # No migration changed: the step is skipped, and the run says so.
    assert not run.ran("Apply database migrations")
    assert run.result("Say what this run does")["msg"].endswith(
        f"no migration changed since {main[:12]}: no migrations run"
    )


def test_an_app_that_sends_ready_is_waited_for_once_the_ecosystem_opts_in(host):
    """The fixture's cooperative variant: it sends ready and closes its server on SIGINT before it exits."""
    put_live(host, "v2")
    cooperative = {
        "pm2_wait_ready": True,
        "pm2_app_env": {"NODE_ENV": "production", "FLORA_SEND_READY": "1", "FLORA_SHUTDOWN_GRACE_MS": "1000"},
    }
    try:
        opted_in = playbook_run(host, "bootstrap_ec2.yml", "-e", json.dumps(cooperative))
        assert opted_in.rc == 0, opted_in
        with SteadyLoad(HEALTH, interval=0.005, threads=4) as load:
            run = redeploy(host, "v3")
        assert run.rc == 0, run
        assert sum("successor sent ready" in line for line in run.result(ACTIVATE)["reload_log"]) == 2
        assert load.sent > 50
        assert load.failures == []
        assert health_message() == "Flora backend v3 is running"
    finally:
        restored = playbook_run(host, "bootstrap_ec2.yml")
        assert restored.rc == 0, restored


def test_a_pm2_daemon_started_without_its_unit_is_warned_about(host):
    put_live(host, "v2")
    # The unit stopped, and the app started by hand: a daemon without the unit's environment.
    host_exec("systemctl", "stop", "pm2-ubuntu")
    host_exec("su", "-", "ubuntu", "-c", f"{PM2} start {ROOT}/shared/ecosystem.config.js >/dev/null 2>&1 </dev/null")
    try:
        run = redeploy(host, "v3")
        assert run.rc == 0, run
        assert "The PM2 daemon runs with PM2_KILL_SIGNAL=(unset, so SIGINT), not SIGTERM" in " ".join(
            run.result(ACTIVATE).get("warnings", [])
        )
    finally:
        # As the warning says: that daemon stopped, the unit started.
        host_exec("su", "-", "ubuntu", "-c", f"{PM2} kill >/dev/null 2>&1 </dev/null")
        host_exec("systemctl", "restart", "pm2-ubuntu")
    assert wait_for_health() == 200 and health_message() == "Flora backend v3 is running"
    again = redeploy(host, "v2")
    assert again.rc == 0, again
    assert again.ran(ACTIVATE) and not again.result(ACTIVATE).get("warnings")


def test_redeploy_of_the_live_commit_is_a_no_op(host):
    v2 = put_live(host, "v2")
    workers = app_pids()

    run = redeploy(host, "v2")

    assert run.rc == 0, run
    assert run.changed == 0
    assert run.ran("Take the deploy lock, resolve the ref, render the env file and decide")
    assert (
        run.result("Report that there is nothing to do")["msg"]
        == f"Nothing to do: {v2[:12]} is live with this env file"
    )
    # The role ended there (meta tasks report no result): the lock was released by the call that took it.
    assert run.names()[-1].endswith("Report that there is nothing to do")
    assert not run.results(ACTIVATE) and not run.results("Release the deploy lock if this run holds it")
    assert not locked()
    assert app_pids() == workers
    assert "WARNING" not in run.stderr, run.stderr


def test_a_secret_change_alone_reloads_without_a_build(host):
    v2 = put_live(host, "v2")
    ssm = localaws.boto3_client("ssm", host["endpoint"])
    name = f"{localaws.FLORA_PREFIX}/stripe_secret_key"
    before = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value="sk_test_rotated_91", Type="SecureString", Overwrite=True)
    workers = app_pids()
    log_start = pm2_log_lines()
    try:
        with SteadyLoad(HEALTH, threads=2) as load:
            run = redeploy(host, "v2", "-e", "backend_redeploy_reload_batch=1")
    finally:
        ssm.put_parameter(Name=name, Value=before, Type="SecureString", Overwrite=True)

    assert run.rc == 0, run
    assert (
        run.result("Say what this run does")["msg"] == f"reload {v2[:12]} with the new env file; the env file changed"
    )
    assert not run.results(BUILD)
    activated = run.result(ACTIVATE)
    assert not activated["switched"] and activated["workers"] == [f"{ROOT}/releases/{v2}/apps/backend"] * 2
    # One worker at a time: the second starts only once the first old one was told to stop.
    assert pm2_reload_events(log_start) == ["start 0", "listening", "stop 0", "start 1", "listening", "stop 1"]
    assert load.sent > 50
    assert load.failures == []
    assert app_pids() != workers
    assert "STRIPE_SECRET_KEY='sk_test_rotated_91'" in host_exec("cat", f"{ROOT}/shared/backend.env")
    assert "sk_test_rotated_91" not in json.dumps(run.report)


def test_an_env_file_a_killed_run_never_reloaded_is_reloaded_by_the_next_run(host):
    v2 = put_live(host, "v2")
    ssm = localaws.boto3_client("ssm", host["endpoint"])
    name = f"{localaws.FLORA_PREFIX}/gemini_api_key"
    before = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value="AIza_rotated_52", Type="SecureString", Overwrite=True)
    try:
        # What a run killed between rendering the env file and reloading the app leaves: the new file, old workers.
        rendered = playbook_run(host, str(stack.REPO / "tests" / "hosts" / "playbooks" / "render_env.yml"))
        assert rendered.rc == 0, rendered
        workers = app_pids()

        run = redeploy(host, "v2")
    finally:
        ssm.put_parameter(Name=name, Value=before, Type="SecureString", Overwrite=True)

    assert run.rc == 0, run
    assert run.result("Say what this run does")["msg"] == (
        f"reload {v2[:12]} with the new env file; the env file was rendered by a run that did not reload the app"
    )
    assert run.ran(ACTIVATE) and app_pids() != workers


def test_a_broken_build_fails_and_the_live_release_keeps_serving(host):
    v2 = put_live(host, "v2")
    with SteadyLoad(HEALTH, threads=2) as load:
        run = redeploy(host, "broken-build")
    broken = host["commits"]["broken-build"]

    assert run.rc != 0
    assert run.failure() == (
        f"Redeploy of broken-build ({broken[:12]}) failed before the switch: 'Build' failed: "
        f"src/index.ts(15,36): error TS1005: ',' expected.. Nothing live changed: {v2[:12]} is still serving."
    )
    assert not run.results(ACTIVATE)
    assert load.sent > 50
    assert load.failures == []
    assert (live_commit(), health_message()) == (v2, "Flora backend v2 is running")
    assert ledger_status(broken) == "failed"
    assert not locked()


def test_a_failed_migration_stops_before_the_switch(host):
    v2 = put_live(host, "v2")
    try:
        run = redeploy(host, "bad-migration")

        assert run.rc != 0
        assert run.ran("Apply database migrations")
        failure = run.failure()
        assert failure.startswith(f"Redeploy of bad-migration ({host['commits']['bad-migration'][:12]}) failed before")
        assert "'Apply database migrations' failed: Error: P3018 / relation \"no_such_table\" does not exist" in failure
        assert live_commit() == v2 and ledger_status(host["commits"]["bad-migration"]) == "failed"
    finally:
        # As Prisma asks for after a failed migration.
        host_exec(
            "su", "-", "ubuntu", "-c",
            f"cd {ROOT}/releases/{host['commits']['bad-migration']} && PATH=/usr/local/bin:$PATH "
            "pnpm --filter backend exec prisma migrate resolve --rolled-back 20250201000000_broken",
        )  # fmt: skip


def test_a_migration_runs_before_the_switch_and_no_redeploy_touches_the_data(host):
    put_live(host, "main")
    port = host["pg_port"]
    psql("UPDATE products SET stock = 7 WHERE name = 'Roses'", port)
    psql("ALTER TABLE products DROP COLUMN IF EXISTS price", port)
    psql("DELETE FROM _prisma_migrations WHERE migration_name = '20250301000000_price'", port)

    run = redeploy(host, "with-migration")

    assert run.rc == 0, run
    migrated = run.result("Apply database migrations")
    assert migrated["changed"] and "20250301000000_price" in migrated["stdout"]
    assert psql("SELECT name, stock, price FROM products ORDER BY name", port) == "Roses|7|0\nTulips|50|0"
    # What the app's own db:setup would have done on the same redeploy: migrate, then seed over the live rows.
    psql("UPDATE products SET stock = 7 WHERE name = 'Roses'", port)
    put_live(host, "main")
    # The migration pending again, so that the migration step runs.
    psql("ALTER TABLE products DROP COLUMN price", port)
    psql("DELETE FROM _prisma_migrations WHERE migration_name = '20250301000000_price'", port)
    seeding = redeploy(host, "with-migration", "-e", "backend_release_migrate_command='pnpm --filter backend db:setup'")
    assert seeding.rc == 0, seeding
    assert psql("SELECT stock FROM products WHERE name = 'Roses'", port) == "100"
    psql("UPDATE products SET stock = 7 WHERE name = 'Roses'", port)


def test_an_unhealthy_release_is_rolled_back_automatically(host):
    v2 = put_live(host, "v2")
    unhealthy = host["commits"]["unhealthy"]
    with SteadyLoad(HEALTH, threads=2) as load:
        run = redeploy(host, "unhealthy", "-e", "backend_redeploy_health_retries=3")

    assert run.rc != 0
    assert run.failure() == (
        f"Release {unhealthy[:12]} failed after the switch: '{ACTIVATE}' failed: checks failed after 3 round(s): "
        f"health check: {HEALTH} answered 500; expected 200. Rolled back automatically: {v2[:12]} is serving again "
        "and passed its health check."
    )
    attempt, rollback = run.results(ACTIVATE)
    assert attempt["failed"] and attempt["switched"] and attempt["step"] == "checks"
    assert rollback["workers"] == [f"{ROOT}/releases/{v2}/apps/backend"] * 2
    assert (live_commit(), health_message(), ledger()["current"]) == (v2, "Flora backend v2 is running", v2)
    assert ledger_status(unhealthy) == "failed"
    # The broken release answered 500 while it was live: those are the only failures.
    assert load.failures and all("500" in failure for failure in load.failures)
    # The rollback's reload waited for the old workers of the reload before it: PM2 still knows every worker.
    assert unlisted_workers() == set()
    assert not locked()


def test_the_rollback_playbook_returns_to_the_last_good_release_or_a_named_one(host):
    main = put_live(host, "main")
    v2 = put_live(host, "v2")
    before = host_state()

    checked = playbook_run(host, "rollback_backend.yml", "--check")
    assert checked.rc == 0, checked
    assert checked.changed == 1
    assert (
        checked.result("Say what this run does")["msg"] == f"Would switch from {v2[:12]} back to {main[:12]} and reload"
    )
    assert host_state() == before

    back = playbook_run(host, "rollback_backend.yml")
    assert back.rc == 0, back
    assert back.result(ACTIVATE)["previous"] == v2
    assert (live_commit(), health_message(), ledger()["current"]) == (main, "Flora backend is running", main)
    again = playbook_run(host, "rollback_backend.yml", "-e", f"backend_redeploy_rollback_to={v2}")
    assert again.rc == 0, again
    assert live_commit() == v2


def test_no_secret_reaches_the_output_of_the_backend_playbooks_at_vvv_with_diff(host):
    """The bootstrap, a redeploy that backs up the database and migrates it, one that fails after the switch and
    rolls back, and the rollback playbook, each at -vvv with --diff: no Parameter Store secret in their output, as
    it is, JSON-escaped or percent-encoded."""
    main = put_live(host, "main")
    port = host["pg_port"]
    # The price migration pending, so that the redeploy lists, checks, backs up and applies it.
    psql("ALTER TABLE products DROP COLUMN IF EXISTS price", port)
    psql("DELETE FROM _prisma_migrations WHERE migration_name = '20250301000000_price'", port)
    outputs = {}

    def run(name: str, *extra: str) -> int:
        proc = stack.playbook(host, name, "-vvv", "--diff", *extra)
        outputs[" ".join((name, *extra))] = proc.stdout + proc.stderr
        return proc.returncode

    assert run("bootstrap_ec2.yml") == 0
    assert run("redeploy_backend.yml", "-e", "backend_redeploy_ref=with-migration") == 0
    migrated = host["commits"]["with-migration"]
    assert live_commit() == migrated and psql("SELECT count(*) FROM products WHERE price = 0", port) == "2"
    assert (
        run("redeploy_backend.yml", "-e", "backend_redeploy_ref=unhealthy", "-e", "backend_redeploy_health_retries=1")
        != 0
    )
    assert (live_commit(), ledger_status(host["commits"]["unhealthy"])) == (migrated, "failed")
    assert run("rollback_backend.yml") == 0
    assert live_commit() == main

    secrets = localaws.secret_forms(localaws.FLORA_SECURE_PARAMETERS.values())
    assert len(outputs) == 4
    assert [(command, secret) for command, output in outputs.items() for secret in secrets if secret in output] == []


def test_a_rollback_to_a_release_that_is_not_built_fails_and_changes_nothing(host):
    v2 = put_live(host, "v2")
    run = playbook_run(host, "rollback_backend.yml", "-e", "backend_redeploy_rollback_to=0123456789abcdef")
    assert run.rc != 0
    assert run.failure() == (
        f"No release to roll back to: release 0123456789abcdef is not a built release in {ROOT}/releases. "
        f"{v2[:12]} is still serving."
    )
    assert live_commit() == v2 and not locked()


def test_a_second_concurrent_redeploy_fails_fast_on_the_lock(host):
    put_live(host, "v2")
    # The first run holds the lock at least as long as its workers take to start: 8 s here.
    slow_start = json.dumps(
        {"backend_redeploy_ref": "main", "app_env_extra_literals": {"FLORA_STARTUP_DELAY_MS": "8000"}}
    )
    command = playbook_command(host, "redeploy_backend.yml", "-e", slow_start)
    first = subprocess.Popen(command, env=host["env"], stdout=subprocess.PIPE, text=True)
    try:
        host_exec(
            "sh",
            "-c",
            f"for i in $(seq 1 100); do test -d {ROOT}/.deploy.lock && exit 0; sleep 0.2; done; exit 1",
        )
        second = redeploy(host, "main")
    finally:
        first_out, _stderr = first.communicate(timeout=900)
    assert first.returncode == 0, first_out[-4000:]
    assert second.rc != 0
    assert second.failure().startswith("Another redeploy of this host is running")
    assert not second.results(ACTIVATE)
    assert live_commit() == host["commits"]["main"]


def wait_on_host(check: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(
        ["podman", "exec", HOST, "sh", "-c", check], env=stack.podman_env(), capture_output=True, check=False
    ).returncode:
        assert time.monotonic() < deadline, f"timed out waiting for: {check}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "moment",
    [
        "during the build: test -d {root}/releases/.{commit}.partial/apps/backend/node_modules",
        "right after the switch: readlink {root}/current | grep -q {commit}",
        # Killed while the PM2 daemon replaces the workers: the daemon finishes, the next run checks them.
        "during the PM2 reload: pgrep -u ubuntu -f 'pm2-reload-workers.js .* flora-backend reload'",
    ],
)
def test_a_killed_redeploy_keeps_the_app_serving_and_the_next_run_converges(host, moment):
    put_live(host, "v2")
    message = f"Flora backend killed-{uuid.uuid4().hex[:6]} is running"
    branch, commit = new_branch(host, "v2", with_health_message(host, "v2", message), "A commit to kill a run on")
    check = moment.split(": ", 1)[1].format(root=ROOT, commit=commit)
    with SteadyLoad(HEALTH, threads=2) as load:
        command = playbook_command(host, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={branch}")
        run = subprocess.Popen(command, env=host["env"], stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_on_host(check)
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        # An ssh session would hang up the remote commands; podman exec leaves them running: let them end.
        wait_on_host("! pgrep -u ubuntu -f 'pnpm (install|--filter)|pm2-reload-workers.js .* flora-backend'", 120)
    assert load.sent > 50
    assert load.failures == []

    again = redeploy(host, branch)

    assert again.rc == 0, again
    if moment.startswith("during the build"):
        # The run was killed holding the lock (later, the host side it left running lets go of it): the lock is
        # taken over, its holder being gone from this controller. What runs at that pid now is not shown.
        assert again.ran("Take over the lock and decide again")
        holder = again.result("Check whether the lock's holder still runs on this controller")
        assert "censored" in holder and "stdout" not in holder, holder
    assert (live_commit(), ledger()["current"], health_message()) == (commit, commit, message)
    assert not locked()
    assert unlisted_workers() == set()


def test_a_change_to_a_file_the_install_depends_on_installs_afresh_within_a_t2_micro(host):
    v2 = put_live(host, "v2")

    # A fresh install, a full build and a reload of both workers, on the test host's 1 GiB without swap.
    with MemoryWatch(HOST, stack.podman_env()) as memory:
        run = redeploy(host, "new-package-json", "-e", "backend_redeploy_keep_releases=10")

    print(f"\nredeploy with a dependency change: {memory.report()}")
    assert memory.limit == 1024**3 and memory.oom_kills == 0
    assert run.rc == 0, run
    built = run.result(BUILD)
    assert not built["deps_linked"] and built["installed"]
    assert [step["name"] for step in built["steps"]] == ["Unpack", "Install dependencies", "Build"]
    assert health_message() == "Flora backend new-package-json is running"
    fresh = shared_install(host["commits"]["new-package-json"])
    assert fresh.startswith(f"{ROOT}/deps/") and fresh != shared_install(v2)
    # The install was shared before the build: tsc's build info names the packages where the next releases with
    # these dependencies find them, so their incremental builds do not take them for changed files.
    build_info = host_exec(
        "cat", f"{ROOT}/releases/{host['commits']['new-package-json']}/apps/backend/dist/.tsbuildinfo"
    )
    assert f"{fresh.removeprefix(ROOT)}/.pnpm/@types+node@" in build_info
    assert "/node_modules/.pnpm/@types+node@" not in build_info
    assert {fresh, shared_install(v2)} <= set(deps_dirs())


def test_an_incremental_build_keeps_no_output_of_a_deleted_source(host):
    put_live(host, "v2")
    extra = "export const legacyDiscount = (price: number) => price * 0.9;\n"
    added_branch, added = new_branch(host, "v2", {"apps/backend/src/legacy.ts": extra}, "Add a module")
    deleted_branch, deleted = new_branch(host, added_branch, {"apps/backend/src/legacy.ts": None}, "Delete it")

    with_module = redeploy(host, added_branch)
    without_module = redeploy(host, deleted_branch)

    assert with_module.rc == 0 and without_module.rc == 0, (with_module, without_module)
    for run, commit in ((with_module, added), (without_module, deleted)):
        unpacked = run.result(BUILD)
        assert unpacked["build_carried"], unpacked["build_carried_note"]
    assert without_module.result(BUILD)["stale_outputs"] == ["dist/legacy.js"]
    outputs = f"{ROOT}/releases/{{}}/apps/backend/dist"
    assert "legacy.js" in host_exec("ls", outputs.format(added)).split()
    assert host_exec("ls", outputs.format(deleted)).split() == ["index.js"]
    assert live_commit() == deleted


def test_redeploy_prunes_old_releases_but_keeps_the_live_and_the_last_good_one(host):
    put_live(host, "main")
    put_live(host, "new-package-json")
    v3 = put_live(host, "v3")
    before = set(host_exec("ls", f"{ROOT}/releases").split())
    assert {host["commits"]["main"], host["commits"]["new-package-json"], v3} <= before

    run = redeploy(host, "v2", "-e", "backend_redeploy_keep_releases=1")

    assert run.rc == 0, run
    v2 = host["commits"]["v2"]
    assert set(host_exec("ls", f"{ROOT}/releases").split()) == {v2, v3}
    assert sorted(run.result(ACTIVATE)["recorded"]["pruned"]) == sorted(before - {v2, v3})
    assert ledger_status(host["commits"]["main"]) == "pruned" and ledger_status(v3) == "previous"
    # The install only the pruned releases used goes too; the one v2 and v3 link to stays.
    deadline = time.monotonic() + 30
    while deps_dirs() != [shared_install(v2)] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert deps_dirs() == [shared_install(v2)] == [shared_install(v3)]


def test_redeploy_starts_an_app_that_pm2_has_stopped(host):
    put_live(host, "v2")
    host_exec("su", "-", "ubuntu", "-c", f"{PM2} stop flora-backend")
    assert '"status":"online"' not in host_exec("su", "-", "ubuntu", "-c", f"{PM2} jlist")

    run = redeploy(host, "v3")

    assert run.rc == 0, run
    v3 = host["commits"]["v3"]
    assert run.result(ACTIVATE)["workers"] == [f"{ROOT}/releases/{v3}/apps/backend"] * 2
    assert (live_commit(), health_message(), ledger()["current"]) == (v3, "Flora backend v3 is running", v3)
