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
from tests.support.stack import playbook_run


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
    stack.allow(bootstrapped_host, target_group_arn=arn)
    return {"stack": bootstrapped_host, "elb": elb, "arn": arn, "target": target, "instance_id": instance_id}


def redeploy(group: dict, ref: str, **variables):
    settings = {
        "backend_redeploy_ref": ref,
        "backend_redeploy_target_group_arn": group["arn"],
        "backend_redeploy_target_id": group["instance_id"],
        "backend_redeploy_target_drain_timeout": 30,
        **variables,
    }
    return playbook_run(group["stack"], "redeploy_backend.yml", "-e", json.dumps(settings))


OUT = "Change this host's membership of the target group to absent"
ACTIVATE = "Switch, reload PM2 without dropping requests, verify the workers, check and record"
BACK = "Change this host's membership of the target group to present"
RECORD = "Record the release once the host is back in the load balancer"


def put_live(group: dict, ref: str) -> None:
    """Without the load balancer: the release a test starts from."""
    run = playbook_run(group["stack"], "redeploy_backend.yml", "-e", f"backend_redeploy_ref={ref}")
    assert run.rc == 0, run


def test_the_host_leaves_the_target_group_for_its_reload_and_rejoins_after_the_checks(target_group):
    put_live(target_group, "v2")
    with TargetWatch(target_group["elb"], target_group["arn"], target_group["target"]) as watch:
        run = redeploy(target_group, "v3")
    assert run.rc == 0, run
    v3 = target_group["stack"]["commits"]["v3"]
    assert ledger_current() == v3
    assert watch.states == ["healthy", "unused", "healthy"]
    # Out, then the reload with its checks, back in, and only then recorded.
    steps = [name.split(" : ")[-1] for name in run.names() if name.split(" : ")[-1] in (OUT, ACTIVATE, BACK, RECORD)]
    assert steps == [OUT, ACTIVATE, BACK, RECORD]
    assert "recorded" not in run.result(ACTIVATE)
    assert run.result(RECORD)["current"] == v3 and run.result(RECORD)["lock_released"]


def test_a_failed_release_is_rolled_back_and_the_host_rejoins(target_group):
    put_live(target_group, "v2")
    with TargetWatch(target_group["elb"], target_group["arn"], target_group["target"]) as watch:
        run = redeploy(target_group, "unhealthy", backend_redeploy_health_retries=2)
    assert run.rc != 0
    assert ledger_current() == target_group["stack"]["commits"]["v2"]
    assert watch.states[0] == "healthy" and watch.states[-1] == "healthy"
    assert "unused" in watch.states
    # Out for the failed release; out (already) and back in around the rollback's reload.
    steps = [name.split(" : ")[-1] for name in run.names() if name.split(" : ")[-1] in (OUT, ACTIVATE, BACK, RECORD)]
    assert steps == [OUT, ACTIVATE, OUT, ACTIVATE, BACK, RECORD]
    assert "Rolled back automatically" in run.failure()


def test_a_no_op_redeploy_leaves_the_target_group_alone(target_group):
    put_live(target_group, "v2")
    with TargetWatch(target_group["elb"], target_group["arn"], target_group["target"]) as watch:
        run = redeploy(target_group, "v2")
    assert run.rc == 0, run
    assert watch.states == ["healthy"]
    assert run.ran("Read the target group")
    assert not run.results(OUT) and not run.results(ACTIVATE)


def test_an_unknown_target_group_fails_before_anything_changes(target_group):
    put_live(target_group, "v2")
    missing = target_group["arn"].rsplit("/", 2)[0] + "/flora-missing/0123456789abcdef"
    run = redeploy(target_group, "v3", backend_redeploy_target_group_arn=missing)
    assert run.rc != 0
    assert run.failure().startswith(f"Target group {missing} not found")
    assert not run.results("Take the deploy lock, resolve the ref, render the env file and decide")
    assert ledger_current() == target_group["stack"]["commits"]["v2"]
