"""playbooks/bootstrap_ec2.yml on a host the app's own scripts deployed: a plain checkout in /home/ubuntu/Flora,
built in place, a world-readable unquoted .env, and the backend under PM2 in fork mode (tests/hosts/playbooks/
scripts_host.yml). The bootstrap adopts it under load, on a 1 GB host like the real t2.micro.

The host shares the main test host's ports (3001, and SSH on 2222), so the main test host is stopped meanwhile.
"""

from __future__ import annotations

import datetime
import json

import pytest

from tests.hosts.conftest import host_in_place_of_the_test_host
from tests.support import localaws, stack
from tests.support.load import SteadyLoad
from tests.support.memory import MemoryWatch
from tests.support.stack import playbook_run

SCRIPTS_HOST = "flora-scripts"
ROOT = "/home/ubuntu/Flora"
HEALTH = "http://127.0.0.1:3001/api/health"
PM2 = "PM2_HOME=/home/ubuntu/.pm2 PATH=/usr/local/bin:$PATH pm2"
STOP_SCRIPTS = "Stop the scripts' PM2 daemon and the app it runs"
HEALTHY = "Wait for the app to answer its health check"


def host_exec(*cmd: str) -> str:
    return stack.host_exec(SCRIPTS_HOST, *cmd)


def processes() -> list[dict]:
    return json.loads(host_exec("su", "-", "ubuntu", "-c", f"{PM2} jlist"))


def timestamp(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def scripts_host(host_services, tmp_path):
    """A 1 GB test host deployed by the app's scripts, at the fixture app's main branch."""
    env_file = tmp_path / "scripts.env"
    values = localaws.expected_backend_env("https://flora.example", f"127.0.0.1:{host_services['pg_port']}")
    # As the scripts' heredoc writes it: unquoted.
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    with host_in_place_of_the_test_host(host_services, SCRIPTS_HOST, tmp_path) as services:
        deployed = playbook_run(
            services, str(stack.REPO / "tests" / "hosts" / "playbooks" / "scripts_host.yml"), "-e",
            f"scripts_env_file={env_file}",
        )  # fmt: skip
        assert deployed.rc == 0, deployed
        yield services


def test_bootstrap_adopts_a_host_the_scripts_deployed_and_it_can_roll_back_to_their_checkout(scripts_host):
    commits = scripts_host["commits"]
    main, v2 = commits["main"], commits["v2"]
    assert [(p["name"], p["pm2_env"]["exec_mode"]) for p in processes()] == [("flora-backend", "fork_mode")]
    assert host_exec("stat", "-c", "%a", f"{ROOT}/apps/backend/.env") == "644"

    # A redeploy before the bootstrap (the host has no boto3 yet) stops at its first call to the host, says how to
    # adopt the checkout, and changes nothing.
    before = host_exec("ls", "-A", ROOT)
    early = playbook_run(scripts_host, "redeploy_backend.yml", "-e", "backend_redeploy_ref=v2")
    assert early.rc != 0
    assert early.result("Take the deploy lock, resolve the ref, render the env file and decide")["lock_released"]
    assert early.failure() == (
        f"{ROOT}/current is not a release link: this is a checkout deployed by the app's scripts; adopt it once with "
        "playbooks/bootstrap_ec2.yml, which keeps it as a release to roll back to"
    )
    assert host_exec("ls", "-A", ROOT) == before
    assert [(p["name"], p["pm2_env"]["status"]) for p in processes()] == [("flora-backend", "online")]

    with MemoryWatch(SCRIPTS_HOST, stack.podman_env()) as memory, SteadyLoad(HEALTH, threads=2) as load:
        run = playbook_run(scripts_host, "bootstrap_ec2.yml", "-e", "ec2_bootstrap_ref=v2")

    assert run.rc == 0, run
    found = run.result("Look for a checkout the app's scripts deployed")
    assert (found["found"], found["commit"], found["changed"]) == (True, main, False)
    adopted = run.result("Keep the scripts' checkout as a release to roll back to")
    assert (adopted["directory"], adopted["release"], adopted["env_kept"]) == (f"{ROOT}/releases/{main}", True, True)
    # The release layout, with the scripts' checkout kept as the release of its commit.
    assert host_exec("readlink", f"{ROOT}/current") == f"{ROOT}/releases/{v2}"
    assert host_exec("test", "-d", f"{ROOT}/releases/{main}/.git") == ""
    assert json.loads(host_exec("cat", f"{ROOT}/releases/{main}/.flora-release"))["commit"] == main
    assert host_exec("stat", "-c", "%U", f"{ROOT}/releases/{main}", f"{ROOT}/releases/{main}/.flora-release") == (
        "ubuntu\nubuntu"
    )
    assert host_exec("readlink", f"{ROOT}/releases/{main}/apps/backend/.env") == f"{ROOT}/shared/backend.env"
    assert host_exec("stat", "-c", "%a", f"{ROOT}/releases/{main}/apps/backend/.env.from-scripts") == "600"
    assert sorted(host_exec("ls", ROOT).split()) == [
        "current", "deps", "releases", "releases.json", "repo.git", "shared"
    ]  # fmt: skip
    ledger = json.loads(host_exec("cat", f"{ROOT}/releases.json"))
    assert ledger["current"] == v2
    assert {r["commit"]: (r["status"], r.get("ref")) for r in ledger["releases"]} == {
        main: ("previous", "scripts checkout"),
        v2: ("live", "v2"),
    }
    # The unit's PM2 runs the release in cluster mode; the scripts' fork-mode process is gone.
    assert [(p["name"], p["pm2_env"]["exec_mode"]) for p in processes()] == [("flora-backend", "cluster_mode")] * 2
    assert host_exec("systemctl", "is-active", "pm2-ubuntu") == "active"
    # The site was down only while the app moved from the scripts' process to the cluster.
    moved = [
        task["task"]["duration"]
        for play in run.report["plays"]
        for task in play["tasks"]
        if task["task"]["name"].endswith((STOP_SCRIPTS, HEALTHY))
    ]
    window = (timestamp(moved[0]["start"]), timestamp(moved[-1]["end"]))
    assert all(window[0] <= moment <= window[1] for moment in load.failure_times), (window, load.failure_times)
    print(
        f"\nadopting the scripts' host: {len(load.failures)} of {load.sent} requests failed, the site was down "
        f"{load.downtime():.1f} s; {memory.report()}"
    )
    assert memory.oom_kills == 0

    # A redeploy, and a rollback to the scripts' checkout, work like on any bootstrapped host.
    with SteadyLoad(HEALTH, threads=2) as load:
        redeployed = playbook_run(scripts_host, "redeploy_backend.yml", "-e", "backend_redeploy_ref=v3")
    assert redeployed.rc == 0, redeployed
    assert load.sent > 50
    assert load.failures == []
    assert json.loads(host_exec("curl", "-sf", HEALTH))["message"] == "Flora backend v3 is running"
    back = playbook_run(scripts_host, "rollback_backend.yml", "-e", f"backend_redeploy_rollback_to={main}")
    assert back.rc == 0, back
    assert json.loads(host_exec("curl", "-sf", HEALTH))["message"] == "Flora backend is running"
    activated = back.result("Switch, reload PM2 without dropping requests, verify the workers, check and record")
    assert activated["workers"] == [f"{ROOT}/releases/{main}/apps/backend"] * 2
