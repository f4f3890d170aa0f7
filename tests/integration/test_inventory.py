"""inventory/aws_ec2.yml through ansible-inventory against instances on the moto server's EC2 API, as the inventory
source's identity (the policy flora.deploy.iam_policies ships for it), with the emulator authorizing each request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, playbook_environment
from tests.support import identities, localaws

INVENTORY = REPO / "inventory" / "aws_ec2.yml"


def launch(ec2, image: str, name: str, **tags: str) -> str:
    tag_list = [{"Key": "Name", "Value": name}] + [{"Key": key, "Value": value} for key, value in tags.items()]
    response = ec2.run_instances(
        ImageId=image,
        InstanceType="t3.small",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
    )
    return response["Instances"][0]["InstanceId"]


@pytest.fixture
def fleet(aws):
    ec2 = localaws.boto3_client("ec2", aws)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instances = {
        "web1": launch(ec2, image, "flora-backend-production", Role="backend", Environment="prod"),
        "web2": launch(ec2, image, "flora-backend-production", Role="backend", Environment="prod"),
        "untagged": launch(ec2, image, "flora-backend-production"),
        "stopped": launch(ec2, image, "flora-backend-production", Role="backend", Environment="prod"),
        "other": launch(ec2, image, "flora-worker-production", Role="worker"),
    }
    ec2.stop_instances(InstanceIds=[instances["stopped"]])
    described = ec2.describe_instances(InstanceIds=list(instances.values()))
    details = {i["InstanceId"]: i for r in described["Reservations"] for i in r["Instances"]}
    return {name: details[instance_id] for name, instance_id in instances.items()}


def plain(value):
    """ansible-inventory marks values that came from templates as {"__ansible_unsafe": value}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def run_inventory(
    endpoint: str, tmp_path: Path, identity: identities.Identity, *extra: str, environment: dict | None = None
) -> subprocess.CompletedProcess:
    """ansible-inventory --list on inventory/aws_ec2.yml as ``identity``, the emulator authorizing every request; a
    source that cannot be read fails the run."""
    env = dict(playbook_environment(endpoint, tmp_path), **(environment or {}), **identity.environment())
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    with identities.enforcing(endpoint):
        return subprocess.run(
            [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(INVENTORY), "--list", *extra],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def inventory(aws, tmp_path: Path, *extra: str, environment: dict | None = None) -> dict:
    """The inventory as the prod environment's inventory source reads it."""
    source = identities.production_identities(aws, "prod").inventory
    proc = run_inventory(aws, tmp_path, source, *extra, environment=environment)
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout))


def test_running_backend_instances_are_found_by_tag_and_grouped(aws, fleet, tmp_path):
    found = inventory(aws, tmp_path)
    running = {fleet[name]["InstanceId"] for name in ("web1", "web2", "untagged")}
    assert set(found["flora_backend"]["hosts"]) == running
    assert set(found["role_backend"]["hosts"]) == running
    assert set(found["env_prod"]["hosts"]) == running
    hostvars = found["_meta"]["hostvars"]
    assert fleet["stopped"]["InstanceId"] not in hostvars
    assert fleet["other"]["InstanceId"] not in hostvars
    web1 = hostvars[fleet["web1"]["InstanceId"]]
    assert web1["ansible_host"] == fleet["web1"]["PublicIpAddress"]
    assert web1["ansible_user"] == "ubuntu"
    assert web1["ansible_connection"] == "ssh"
    assert web1["flora_instance_name"] == "flora-backend-production"


# As a user passes them, and as AWX passes an inventory source's variables: environment variables.
SETTINGS = [
    pytest.param(
        lambda settings: ([arg for k, v in settings.items() for arg in ("-e", f"{k}={v}")], {}), id="extra vars"
    ),
    pytest.param(lambda settings: ([], settings), id="environment"),
]


@pytest.mark.parametrize("given", SETTINGS)
def test_private_addresses_on_request(aws, fleet, tmp_path, given):
    extra, environment = given({"flora_ec2_address": "private"})
    found = inventory(aws, tmp_path, *extra, environment=environment)
    web2 = found["_meta"]["hostvars"][fleet["web2"]["InstanceId"]]
    assert web2["ansible_host"] == fleet["web2"]["PrivateIpAddress"]
    assert web2["ansible_host"] != fleet["web2"]["PublicIpAddress"]


@pytest.mark.parametrize("given", SETTINGS)
def test_session_manager_connection_on_request(aws, fleet, tmp_path, given):
    extra, environment = given({"flora_ec2_connection": "ssm", "flora_ec2_ssm_bucket": "flora-ssm-transfer"})
    found = inventory(aws, tmp_path, *extra, environment=environment)
    web1 = found["_meta"]["hostvars"][fleet["web1"]["InstanceId"]]
    assert web1["ansible_connection"] == "amazon.aws.aws_ssm"
    assert web1["ansible_aws_ssm_instance_id"] == fleet["web1"]["InstanceId"]
    assert web1["ansible_aws_ssm_region"] == localaws.REGION
    assert web1["ansible_aws_ssm_bucket_name"] == "flora-ssm-transfer"


def test_an_extra_variable_wins_over_the_environment(aws, fleet, tmp_path):
    found = inventory(aws, tmp_path, "-e", "flora_ec2_address=public", environment={"flora_ec2_address": "private"})
    web1 = found["_meta"]["hostvars"][fleet["web1"]["InstanceId"]]
    assert web1["ansible_host"] == fleet["web1"]["PublicIpAddress"]
