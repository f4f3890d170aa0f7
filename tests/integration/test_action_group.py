"""The flora.deploy.aws action group: module_defaults for it reach every AWS module the collection's roles call,
with the credentials of the identity that calls each in production (the backend's instance role on the host, the
deployer on the controller), the emulator authorizing every request."""

from __future__ import annotations

import socket

from tests.support import identities, localaws


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def module_credentials(identity: identities.Identity) -> dict:
    """The identity as the access_key, secret_key and session_token options of an AWS module."""
    return {
        "access_key": identity.access_key_id,
        "secret_key": identity.secret_access_key,
        "session_token": identity.session_token,
    }


def test_group_defaults_configure_the_modules_the_roles_call(aws, run_playbook):
    localaws.seed_flora_parameters(aws)
    s3 = localaws.boto3_client("s3", aws)
    s3.create_bucket(Bucket="flora-group-test", CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
    s3.put_object(Bucket="flora-group-test", Key="index.html", Body=b"<!doctype html>")
    ec2 = localaws.boto3_client("ec2", aws)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = localaws.boto3_client("elbv2", aws)
    target_group = elbv2.create_target_group(Name="flora-group-test", Protocol="HTTP", Port=3001, VpcId=vpc)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(
        ImageId=image,
        InstanceType="t3.small",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "flora-group-test"}]}],
    )["Instances"][0]["InstanceId"]
    prod = identities.production_identities(
        aws,
        "prod",
        frontend_bucket="flora-group-test",
        target_group_arn=target_group["TargetGroups"][0]["TargetGroupArn"],
    )
    # Neither the environment nor a profile leads to the local AWS: only the group's defaults do.
    nowhere = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_MAX_ATTEMPTS": "1",
    }
    variables = {
        "aws_endpoint": aws,
        "host_credentials": module_credentials(prod.instance),
        "controller_credentials": module_credentials(prod.deployer),
        "group_instance_id": instance,
    }

    with identities.enforcing(aws):
        result = run_playbook("action_group/defaults.yml", variables, env=nowhere)

    assert result.rc == 0, result
    assert "failed=0" in result.output
