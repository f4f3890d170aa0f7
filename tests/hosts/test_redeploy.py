"""playbooks/redeploy_backend.yml and rollback_backend.yml on the bootstrapped systemd test host."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.hosts.conftest import HOST
from tests.support import localaws, stack
from tests.support.load import SteadyLoad
from tests.support.stack import playbook, playbook_command

HEALTH = "http://127.0.0.1:3001/api/health"


def host_exec(*cmd: str) -> str:
    return stack.host_exec(HOST, *cmd)


def live_commit() -> str:
    return host_exec("readlink", "/home/ubuntu/Flora/current").rsplit("/", 1)[-1]


def health_message() -> str:
    return json.loads(host_exec("curl", "-sf", HEALTH))["message"]


def ledger() -> dict:
    return json.loads(host_exec("cat", "/home/ubuntu/Flora/releases.json"))


def ledger_status(commit: str) -> str:
    return next(r["status"] for r in ledger()["releases"] if r["commit"] == commit)


def shared_install(commit: str) -> str:
    """The shared install a release links its virtual store to."""
    return host_exec("readlink", f"/home/ubuntu/Flora/releases/{commit}/node_modules/.pnpm").removesuffix("/.pnpm")


def deps_dirs() -> list[str]:
    """The shared installs on the host, set-aside ones aside."""
    names = host_exec("ls", "/home/ubuntu/Flora/deps").split()
    return sorted(f"/home/ubuntu/Flora/deps/{name}" for name in names)


def recap_changed(output: str) -> int:
    return int(re.search(r"flora-bootstrap\s*:.*changed=(\d+)", output).group(1))


def task_output(output: str, task: str) -> str:
    """What the default callback printed for the task whose name starts with `task`."""
    start = output.index(f"TASK [{task}")
    end = output.find("TASK [", start + 1)
    return output[start : end if end > 0 else None]


PM2_LOG = "/home/ubuntu/.pm2/pm2.log"


def pm2_log_lines() -> int:
    return int(host_exec("sh", "-c", f"wc -l < {PM2_LOG}"))


def pm2_reload_events(since: int) -> list[str]:
    """The PM2 daemon's reload events logged after line `since`: starting, listening, stopping."""
    lines = host_exec("tail", "-n", f"+{since + 1}", PM2_LOG).splitlines()
    events = []
    for line in lines:
        if match := re.search(r"App \[flora-backend:(\d+)\] starting", line):
            events.append(f"start {match[1]}")
        elif "-reload- New worker listening" in line:
            events.append("ready")
        elif match := re.search(r"Stopping app:flora-backend id:_old_(\d+)", line):
            events.append(f"stop {match[1]}")
    return events


PM2 = "PM2_HOME=/home/ubuntu/.pm2 PATH=/usr/local/bin:$PATH pm2"


def unlisted_workers() -> set[str]:
    """App processes PM2 does not list, once the old workers of the last reload had time to stop."""
    deadline = time.monotonic() + 30
    while True:
        running = set(host_exec("sh", "-c", "pgrep -u ubuntu -f 'apps/backend/dist/index.js' || true").split())
        listed = {str(p["pid"]) for p in json.loads(host_exec("su", "-", "ubuntu", "-c", f"{PM2} jlist"))}
        if running <= listed or time.monotonic() > deadline:
            return running - listed
        time.sleep(0.5)


def redeploy(services, ref: str, *extra: str) -> subprocess.CompletedProcess:
    return playbook(services, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={ref}", *extra)


@pytest.fixture(scope="module")
def host(bootstrapped_host):
    return bootstrapped_host


def host_state() -> dict:
    """What a check run must leave alone: the link, the ledger, the release directories, the env file, the workers."""
    return {
        "live": live_commit(),
        "ledger": ledger(),
        "releases": host_exec("ls", "-a", "/home/ubuntu/Flora/releases"),
        "env": host_exec("sha256sum", "/home/ubuntu/Flora/shared/backend.env"),
        "workers": host_exec("sh", "-c", "pgrep -u ubuntu -f 'dist/index.js' | sort"),
        # No lock directory, nor anything else, appears beside the releases.
        "root_entries": host_exec("ls", "-a", "/home/ubuntu/Flora"),
    }


def test_check_mode_reports_the_redeploy_and_changes_nothing(host):
    commits = host["commits"]
    before = host_state()

    result = redeploy(host, "v2", "--check", "--diff")

    assert result.returncode == 0, result.stdout[-5000:]
    assert recap_changed(result.stdout) > 0
    assert f"Would build v2 ({commits['v2'][:12]}), migrate, switch from {commits['main'][:12]}" in result.stdout
    assert "Install dependencies" not in result.stdout
    assert host_state() == before
    assert health_message() == "Flora backend is running"

    nothing = redeploy(host, "main", "--check")
    assert nothing.returncode == 0, nothing.stdout[-5000:]
    assert recap_changed(nothing.stdout) == 0
    assert f"Nothing to do: {commits['main'][:12]} is live" in nothing.stdout


def test_redeploy_of_a_new_commit_serves_it_without_dropping_requests(host):
    commits = host["commits"]
    assert live_commit() == commits["main"]
    log_start = pm2_log_lines()
    with SteadyLoad(HEALTH) as load:
        result = redeploy(host, "v2")
    assert result.returncode == 0, result.stdout[-5000:]
    assert recap_changed(result.stdout) > 0
    # The host's boto3 is Debian 12's: the Parameter Store calls neither warn about it nor about how they warn.
    assert "WARNING" not in result.stderr, result.stderr
    # Both workers are replaced together, and each old one stops only once a replacement is ready.
    events = pm2_reload_events(log_start)
    assert sorted(events[:2]) == ["start 0", "start 1"], events
    assert sorted(e for e in events if e.startswith("stop")) == ["stop 0", "stop 1"], events
    for index, event in enumerate(events):
        if event.startswith("stop"):
            stops_so_far = events[: index + 1].count("stop 0") + events[: index + 1].count("stop 1")
            assert events[:index].count("ready") >= stops_so_far, events
    assert load.sent > 50
    assert load.failures == []
    assert health_message() == "Flora backend v2 is running"
    assert live_commit() == commits["v2"]
    assert ledger()["current"] == commits["v2"]
    assert ledger_status(commits["main"]) == "previous"
    assert unlisted_workers() == set()
    # The export read the installed pnpm's version: it matches the app's, so the pnpm role does not run.
    assert "skipping" in task_output(result.stdout, "Keep pnpm matching the app's packageManager")
    assert "flora.deploy.pnpm :" not in result.stdout
    # Same dependencies as main: the release links the install the bootstrap shared instead of installing again.
    assert shared_install(commits["v2"]) == shared_install(commits["main"])
    assert shared_install(commits["v2"]).startswith("/home/ubuntu/Flora/deps/")


def test_redeploy_of_the_live_commit_is_a_no_op(host):
    result = redeploy(host, "v2")
    assert result.returncode == 0, result.stdout[-5000:]
    assert recap_changed(result.stdout) == 0
    assert "WARNING" not in result.stderr, result.stderr
    assert f"Nothing to do: {host['commits']['v2'][:12]} is live with this env file" in result.stdout
    # The role ends there: the lock was released by the call that took it, and nothing else is even skipped.
    assert "Release the deploy lock" not in result.stdout
    assert "Install dependencies" not in result.stdout
    assert "Reload the app" not in result.stdout
    assert not host_exec("sh", "-c", "ls -d /home/ubuntu/Flora/.deploy.lock 2>/dev/null || true")


def test_secret_change_alone_reloads_without_a_build(host):
    ssm = localaws.boto3_client("ssm", host["endpoint"])
    ssm.put_parameter(
        Name="/flora/prod/stripe_secret_key", Value="sk_test_rotated_91", Type="SecureString", Overwrite=True
    )
    pids_before = host_exec("sh", "-c", "pgrep -u ubuntu -f 'dist/index.js' | sort")
    log_start = pm2_log_lines()
    with SteadyLoad(HEALTH) as load:
        result = redeploy(host, "v2", "-e", "backend_redeploy_reload_batch=1")
    assert result.returncode == 0, result.stdout[-5000:]
    # One worker at a time: the second starts only once the first old one was told to stop.
    assert pm2_reload_events(log_start) == ["start 0", "ready", "stop 0", "start 1", "ready", "stop 1"]
    assert (
        "TASK [flora.deploy.backend_redeploy : Reload the app without dropping requests and check it]" in result.stdout
    )
    assert "Install dependencies" not in result.stdout
    assert "sk_test_rotated_91" not in result.stdout
    assert load.failures == []
    assert host_exec("sh", "-c", "pgrep -u ubuntu -f 'dist/index.js' | sort") != pids_before
    assert "STRIPE_SECRET_KEY='sk_test_rotated_91'" in host_exec("cat", "/home/ubuntu/Flora/shared/backend.env")


def test_env_file_changed_by_a_run_that_died_before_the_reload_is_reloaded_next_run(host):
    ssm = localaws.boto3_client("ssm", host["endpoint"])
    ssm.put_parameter(Name="/flora/prod/gemini_api_key", Value="AIza_rotated_52", Type="SecureString", Overwrite=True)
    # What a run killed between rendering the env file and reloading the app leaves: the new file, the old workers.
    rendered = playbook(host, str(Path(__file__).parent / "playbooks" / "render_env.yml"))
    assert rendered.returncode == 0, rendered.stdout[-5000:]
    assert "GEMINI_API_KEY='AIza_rotated_52'" in host_exec("cat", "/home/ubuntu/Flora/shared/backend.env")
    pids_before = host_exec("sh", "-c", "pgrep -u ubuntu -f 'dist/index.js' | sort")

    result = redeploy(host, "v2")
    assert result.returncode == 0, result.stdout[-5000:]
    assert (
        "TASK [flora.deploy.backend_redeploy : Reload the app without dropping requests and check it]" in result.stdout
    )
    assert "Install dependencies" not in result.stdout
    assert host_exec("sh", "-c", "pgrep -u ubuntu -f 'dist/index.js' | sort") != pids_before
    again = redeploy(host, "v2")
    assert again.returncode == 0, again.stdout[-5000:]
    assert recap_changed(again.stdout) == 0


def test_broken_build_fails_and_the_old_release_keeps_serving(host):
    commits = host["commits"]
    with SteadyLoad(HEALTH) as load:
        result = redeploy(host, "broken-build")
    assert result.returncode != 0
    assert "failed before the switch" in result.stdout
    assert f"{commits['v2'][:12]} is still serving" in result.stdout
    assert load.failures == []
    assert live_commit() == commits["v2"]
    assert health_message() == "Flora backend v2 is running"
    statuses = {r["commit"]: r["status"] for r in ledger()["releases"]}
    assert statuses.get(commits["broken-build"]) == "failed", (statuses, result.stdout[-4000:])


def test_failed_migration_stops_before_the_switch(host):
    commits = host["commits"]
    result = redeploy(host, "bad-migration")
    assert result.returncode != 0
    assert "Apply database migrations" in result.stdout
    assert "failed before the switch" in result.stdout
    assert live_commit() == commits["v2"]
    assert ledger_status(commits["bad-migration"]) == "failed"


def test_unhealthy_release_is_rolled_back_automatically(host):
    commits = host["commits"]
    with SteadyLoad(HEALTH) as load:
        result = redeploy(host, "unhealthy", "-e", "backend_redeploy_health_retries=3")
    assert result.returncode != 0
    assert "Rolled back automatically" in result.stdout
    assert "health check: http://127.0.0.1:3001/api/health answered 500; expected 200" in result.stdout
    assert f"{commits['v2'][:12]} is serving again" in result.stdout
    assert live_commit() == commits["v2"]
    assert health_message() == "Flora backend v2 is running"
    assert ledger_status(commits["unhealthy"]) == "failed"
    assert ledger()["current"] == commits["v2"]
    # The broken release answered 500 while it was live: those are the only failures.
    assert all("500" in failure for failure in load.failures)
    # The rollback's reload waited for the old workers of the reload before it: PM2 still knows every worker.
    assert unlisted_workers() == set()


def test_rollback_playbook_returns_to_the_last_good_release(host):
    commits = host["commits"]
    before = host_state()
    checked = playbook(host, "rollback_backend.yml", "--check")
    assert checked.returncode == 0, checked.stdout[-5000:]
    assert f"Would switch from {commits['v2'][:12]} to {commits['main'][:12]}" in checked.stdout
    assert recap_changed(checked.stdout) == 1
    assert host_state() == before

    result = playbook(host, "rollback_backend.yml")
    assert result.returncode == 0, result.stdout[-5000:]
    assert live_commit() == commits["main"]
    assert health_message() == "Flora backend is running"
    result = playbook(host, "rollback_backend.yml", "-e", f"backend_redeploy_rollback_to={commits['v2']}")
    assert result.returncode == 0, result.stdout[-5000:]
    assert live_commit() == commits["v2"]


def test_rollback_to_an_unknown_release_fails_clearly(host):
    result = playbook(host, "rollback_backend.yml", "-e", "backend_redeploy_rollback_to=0123456789abcdef")
    assert result.returncode != 0
    assert "is not a built release" in result.stdout
    assert live_commit() == host["commits"]["v2"]


def test_a_second_concurrent_redeploy_fails_fast_on_the_lock(host):
    command = playbook_command(host, "redeploy_backend.yml", "-e", "backend_redeploy_ref=main")
    first = subprocess.Popen(command, env=host["env"], stdout=subprocess.PIPE, text=True)
    try:
        host_exec(
            "sh",
            "-c",
            "for i in $(seq 1 100); do test -d /home/ubuntu/Flora/.deploy.lock && exit 0; sleep 0.2; done; exit 1",
        )
        second = redeploy(host, "main")
    finally:
        first_out, _stderr = first.communicate(timeout=900)
    assert first.returncode == 0, first_out[-4000:]
    assert second.returncode != 0
    assert "Another redeploy of this host is running" in second.stdout, second.stdout[-4000:]
    assert live_commit() == host["commits"]["main"]


def wait_on_host(check: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(
        ["podman", "exec", HOST, "sh", "-c", check], env=stack.podman_env(), capture_output=True, check=False
    ).returncode:
        assert time.monotonic() < deadline, f"timed out waiting for: {check}"
        time.sleep(0.2)


@pytest.mark.parametrize(
    "ref, moment",
    [
        ("v3", "during the build: test -d /home/ubuntu/Flora/releases/.{commit}.partial/node_modules"),
        ("v2", "right after the switch: readlink /home/ubuntu/Flora/current | grep -q {commit}"),
        # Killed while the PM2 daemon replaces the workers: the daemon finishes, the next run checks them.
        ("v3", "during the PM2 reload: pgrep -u ubuntu -f 'reload_workers.js .* flora-backend reload'"),
    ],
)
def test_killed_redeploy_keeps_the_app_serving_and_the_next_run_converges(host, ref, moment):
    commit = host["commits"][ref]
    check = moment.split(": ", 1)[1].format(commit=commit)
    with SteadyLoad(HEALTH) as load:
        command = playbook_command(host, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={ref}")
        run = subprocess.Popen(command, env=host["env"], stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_on_host(check)
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        # An ssh session would hang up the remote commands; podman exec leaves them running: let them end.
        wait_on_host("! pgrep -u ubuntu -f 'pnpm (install|--filter)|reload_workers.js .* flora-backend'", timeout=120)
    assert load.failures == []
    result = redeploy(host, ref)
    assert result.returncode == 0, result.stdout[-5000:]
    assert live_commit() == commit
    assert ledger()["current"] == commit
    assert health_message() == f"Flora backend {ref} is running"
    assert not host_exec("sh", "-c", "ls -d /home/ubuntu/Flora/.deploy.lock 2>/dev/null || true")
    assert unlisted_workers() == set()


def test_a_change_to_a_file_the_install_depends_on_installs_afresh(host):
    commits = host["commits"]
    live = live_commit()

    # Nothing pruned yet: the next test prunes.
    keep_all = ("-e", "backend_redeploy_keep_releases=10")
    result = redeploy(host, "new-package-json", *keep_all)

    assert result.returncode == 0, result.stdout[-5000:]
    assert health_message() == "Flora backend new-package-json is running"
    fresh = shared_install(commits["new-package-json"])
    assert fresh.startswith("/home/ubuntu/Flora/deps/")
    assert fresh != shared_install(commits["main"])
    assert deps_dirs() == sorted({fresh, shared_install(commits["main"])})

    back = redeploy(host, "v3" if live == commits["v3"] else "v2", *keep_all)
    assert back.returncode == 0, back.stdout[-5000:]
    assert live_commit() == live


def test_redeploy_prunes_old_releases_but_keeps_the_live_and_the_last_good_one(host):
    commits = host["commits"]
    assert live_commit() == commits["v3"]
    before = set(host_exec("ls", "/home/ubuntu/Flora/releases").split())
    assert {commits["main"], commits["bad-migration"], commits["unhealthy"], commits["new-package-json"]} <= before

    result = redeploy(host, "v2", "-e", "backend_redeploy_keep_releases=1")

    assert result.returncode == 0, result.stdout[-5000:]
    assert live_commit() == commits["v2"]
    assert set(host_exec("ls", "/home/ubuntu/Flora/releases").split()) == {commits["v2"], commits["v3"]}
    for ref in ("main", "bad-migration", "unhealthy", "new-package-json"):
        assert ledger_status(commits[ref]) == "pruned"
    assert ledger_status(commits["v3"]) == "previous"
    assert health_message() == "Flora backend v2 is running"
    # The install only the pruned release used goes too; the one v2 and v3 link to stays.
    assert shared_install(commits["v2"]) == shared_install(commits["v3"])
    deadline = time.monotonic() + 30
    while deps_dirs() != [shared_install(commits["v2"])] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert deps_dirs() == [shared_install(commits["v2"])]


def test_redeploy_starts_an_app_that_pm2_has_stopped(host):
    commits = host["commits"]
    host_exec("su", "-", "ubuntu", "-c", f"{PM2} stop flora-backend")
    assert '"status":"online"' not in host_exec("su", "-", "ubuntu", "-c", f"{PM2} jlist")

    # No online workers to replace: the app is started from its ecosystem file instead.
    result = redeploy(host, "v3")

    assert result.returncode == 0, result.stdout[-5000:]
    assert live_commit() == commits["v3"]
    assert health_message() == "Flora backend v3 is running"
    assert ledger()["current"] == commits["v3"]
