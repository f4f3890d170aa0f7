"""A rolling redeploy of three backend hosts behind a load balancer that follows their ELBv2 target group."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest

from tests.hosts.conftest import HOST
from tests.support import fleet as fleet_support
from tests.support import hostside
from tests.support.load import SteadyLoad
from tests.support.stack import playbook_command


@pytest.fixture(scope="module")
def fleet(bootstrapped_host):
    with fleet_support.fleet(bootstrapped_host, HOST) as hosts:
        hosts["services"] = bootstrapped_host
        yield hosts


def redeploy(hosts: dict, ref: str) -> subprocess.CompletedProcess:
    cmd = playbook_command(hosts["services"], "redeploy_backend.yml", "-e", json.dumps({"backend_redeploy_ref": ref}))
    cmd[cmd.index("-i") + 1] = str(hosts["inventory"])
    return subprocess.run(cmd, env=hosts["services"]["env"], capture_output=True, text=True, timeout=1200, check=False)


def live_commits(hosts: dict) -> list[str]:
    return [fleet_support.ledger(name)["current"] for name in hosts["names"]]


def test_a_rolling_redeploy_through_the_balancer_drops_no_request(fleet):
    # A commit of its own: whatever the hosts run, this one is new to them.
    services = fleet["services"]
    message = f"Flora backend fleet-{uuid.uuid4().hex[:6]} is running"
    source = hostside.source_of(services["origin"], "v2", "apps/backend/src/index.ts")
    branch = f"fleet-{uuid.uuid4().hex[:8]}"
    target = hostside.push_commit(
        services["origin"],
        "v2",
        branch,
        {"apps/backend/src/index.ts": re.sub(r'RELEASE_MESSAGE = "[^"]*"', f'RELEASE_MESSAGE = "{message}"', source)},
        "A commit for the rolling redeploy",
    )
    before = live_commits(fleet)
    assert len(set(before)) == 1
    with SteadyLoad(fleet["url"], interval=0.01) as load:
        result = redeploy(fleet, branch)
    assert result.returncode == 0, result.stdout[-6000:]
    assert load.sent > 100
    assert load.failures == []
    assert live_commits(fleet) == [target] * 3
    # One host at a time left the target group (and so the balancer), and each came back.
    follower = fleet["follower"]
    assert follower.most_out == 1
    assert [host for host, state in follower.events if state == "unused"] == fleet["names"]
    assert set(follower.state.values()) == {"healthy"}
    assert any(message in body for body in load.bodies)


def test_a_broken_build_stops_the_rollout_at_the_first_host(fleet):
    commits = fleet["services"]["commits"]
    live = live_commits(fleet)
    ledgers = {name: fleet_support.ledger(name) for name in fleet["names"]}
    result = redeploy(fleet, "broken-build")
    assert result.returncode != 0
    assert live_commits(fleet) == live
    first, *others = fleet["names"]
    failed = next(r for r in fleet_support.ledger(first)["releases"] if r["commit"] == commits["broken-build"])
    # Recorded by this run (an entry the ledger did not hold before).
    assert failed["status"] == "failed" and failed not in ledgers[first]["releases"]
    # The other hosts were never touched: their ledgers are as they were.
    for name in others:
        assert fleet_support.ledger(name) == ledgers[name]
        assert f"[{name}]" not in result.stdout
    assert set(fleet["follower"].state.values()) == {"healthy"}
