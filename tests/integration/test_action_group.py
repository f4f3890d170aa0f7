"""The flora.deploy.aws action group: module_defaults for it reach every AWS module the collection's roles call."""

from __future__ import annotations

import socket

from tests.support import localaws


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_group_defaults_configure_the_modules_the_roles_call(aws, run_playbook):
    localaws.seed_flora_parameters(aws)
    s3 = localaws.boto3_client("s3", aws)
    s3.create_bucket(Bucket="flora-group-test", CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
    s3.put_object(Bucket="flora-group-test", Key="index.html", Body=b"<!doctype html>")
    ec2 = localaws.boto3_client("ec2", aws)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = localaws.boto3_client("elbv2", aws)
    elbv2.create_target_group(Name="flora-group-test", Protocol="HTTP", Port=3001, VpcId=vpc)
    # Neither the environment nor a profile leads to the local AWS: only the group's defaults do.
    nowhere = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_MAX_ATTEMPTS": "1",
    }

    result = run_playbook("action_group/defaults.yml", {"aws_endpoint": aws}, env=nowhere)

    assert result.rc == 0, result
    assert "failed=0" in result.output
