"""redeploy_backend.yml behind an ELBv2 target group on the moto server: the host leaves it before its reload and
rejoins after its checks, also when the new release fails and is rolled back."""

from __future__ import annotations

import json
import threading
import time
from typing import Self

import pytest

from tests.hosts.conftest import HOST
from tests.support import localaws, stack
from tests.support.stack import playbook


def ledger_current() -> str:
    return json.loads(stack.host_exec(HOST, "cat", "/home/ubuntu/Flora/releases.json"))["current"]


class TargetWatch(threading.Thread):
    """Records every state change of one target in the target group."""

    def __init__(self, elb, target_group_arn: str, target: dict):
        super().__init__(daemon=True)
        self.elb, self.arn, self.target = elb, target_group_arn, target
        self.states: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            health = self.elb.describe_target_health(TargetGroupArn=self.arn, Targets=[self.target])
            state = health["TargetHealthDescriptions"][0]["TargetHealth"]["State"]
            if not self.states or self.states[-1] != state:
                self.states.append(state)
            time.sleep(0.1)

    def __enter__(self) -> Self:
        self.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop_event.set()
        self.join(timeout=10)


@pytest.fixture(scope="module")
def target_group(bootstrapped_host):
    endpoint = bootstrapped_host["endpoint"]
    ec2 = localaws.boto3_client("ec2", endpoint)
    elb = localaws.boto3_client("elbv2", endpoint)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    arn = elb.create_target_group(
        Name="flora-backend-redeploy", Protocol="HTTP", Port=3001, VpcId=vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    target = {"Id": instance_id, "Port": 3001}
    elb.register_targets(TargetGroupArn=arn, Targets=[target])
    live = ledger_current()
    yield {"stack": bootstrapped_host, "elb": elb, "arn": arn, "target": target, "instance_id": instance_id}
    restored = playbook(bootstrapped_host, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={live}")
    assert restored.returncode == 0, restored.stdout[-4000:]


def redeploy(group: dict, ref: str, **variables):
    settings = {
        "backend_redeploy_ref": ref,
        "backend_redeploy_target_group_arn": group["arn"],
        "backend_redeploy_target_id": group["instance_id"],
        "backend_redeploy_target_drain_timeout": 30,
        **variables,
    }
    return playbook(group["stack"], "redeploy_backend.yml", "-e", json.dumps(settings))


def other_release(group: dict) -> str:
    commits = group["stack"]["commits"]
    return "v3" if ledger_current() != commits["v3"] else "v2"


def test_the_host_leaves_the_target_group_for_its_reload_and_rejoins_after_the_checks(target_group):
    ref = other_release(target_group)
    with TargetWatch(target_group["elb"], target_group["arn"], target_group["target"]) as watch:
        result = redeploy(target_group, ref)
    assert result.returncode == 0, result.stdout[-5000:]
    assert ledger_current() == target_group["stack"]["commits"][ref]
    assert watch.states == ["healthy", "unused", "healthy"]
    out, reload, back = (
        result.stdout.index("Take the host out of the load balancer"),
        # The reload runs the health and smoke checks too.
        result.stdout.index("Reload the app without dropping requests and check it"),
        result.stdout.index("Put the host back into the load balancer"),
    )
    assert out < reload < back


def test_a_failed_release_is_rolled_back_and_the_host_rejoins(target_group):
    live = ledger_current()
    with TargetWatch(target_group["elb"], target_group["arn"], target_group["target"]) as watch:
        result = redeploy(target_group, "unhealthy")
    assert result.returncode != 0
    assert ledger_current() == live
    assert watch.states[0] == "healthy" and watch.states[-1] == "healthy"
    assert "unused" in watch.states


def test_a_no_op_redeploy_leaves_the_target_group_alone(target_group):
    with TargetWatch(target_group["elb"], target_group["arn"], target_group["target"]) as watch:
        result = redeploy(target_group, ledger_current())
    assert result.returncode == 0, result.stdout[-5000:]
    assert watch.states == ["healthy"]
    assert "Take the host out of the load balancer" not in result.stdout


def test_an_unknown_target_group_fails_before_anything_changes(target_group):
    live = ledger_current()
    missing = target_group["arn"].rsplit("/", 2)[0] + "/flora-missing/0123456789abcdef"
    result = redeploy(target_group, other_release(target_group), backend_redeploy_target_group_arn=missing)
    assert result.returncode != 0
    assert f"Target group {missing} not found" in result.stdout
    assert "Install dependencies" not in result.stdout
    assert ledger_current() == live
