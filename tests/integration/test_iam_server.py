"""tests/support/iam_server.py: the moto server authorizing each request per resource, as AWS does, so that the
policies test_iam_policies.py proves minimal are judged as AWS would judge them."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest

from tests.support import identities, localaws
from tests.support.identities import enforcing

BUCKET = "flora-iam-server-test"
PARAMETER = f"arn:aws:ssm:{localaws.REGION}:{identities.ACCOUNT}:parameter"


def user_with(endpoint: str, name: str, *statements: dict) -> identities.Identity:
    iam = localaws.boto3_client("iam", endpoint)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **item} for item in statements]}
    iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
    return identities.create_user(endpoint, name, [name])


def refusal(call) -> dict:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call()
    return refused.value.response["Error"]


def test_ssm_calls_are_authorized_per_parameter_and_path(aws):
    localaws.seed_flora_parameters(aws, "/flora/dev")
    localaws.seed_flora_parameters(aws, "/flora/prod")
    user = user_with(
        aws,
        "ssm-reader",
        {"Action": "ssm:GetParametersByPath", "Resource": [f"{PARAMETER}/flora/dev", f"{PARAMETER}/flora/dev/*"]},
        {"Action": "ssm:GetParameters", "Resource": f"{PARAMETER}/flora/dev/auth0_domain"},
    )
    ssm = user.client("ssm", aws)
    with enforcing(aws):
        found = ssm.get_parameters_by_path(Path="/flora/dev", Recursive=True, WithDecryption=True, MaxResults=10)
        assert len(found["Parameters"]) == 10
        assert ssm.get_parameters(Names=["/flora/dev/auth0_domain"])["Parameters"][0]["Value"]
        by_path = refusal(lambda: ssm.get_parameters_by_path(Path="/flora/prod", Recursive=True))
        # One name it may not read refuses the whole call, naming that name.
        by_name = refusal(lambda: ssm.get_parameters(Names=["/flora/dev/auth0_domain", "/flora/dev/jwt_secret"]))
    assert by_path["Code"] == "AccessDeniedException"
    assert by_path["Message"] == (
        f"User: {user.arn} is not authorized to perform: ssm:GetParametersByPath on resource: "
        f"{PARAMETER}/flora/prod because no identity-based policy allows the ssm:GetParametersByPath action"
    )
    assert f"ssm:GetParameters on resource: {PARAMETER}/flora/dev/jwt_secret " in by_name["Message"]


def test_cloudfront_calls_are_authorized_per_distribution(aws):
    allowed = localaws.create_site(aws, BUCKET)
    other = localaws.create_site(aws, "flora-iam-server-other")
    distribution = f"arn:aws:cloudfront::{identities.ACCOUNT}:distribution"
    user = user_with(
        aws, "cloudfront-reader", {"Action": "cloudfront:GetDistribution", "Resource": f"{distribution}/{allowed}"}
    )
    cloudfront = user.client("cloudfront", aws)
    with enforcing(aws):
        assert cloudfront.get_distribution(Id=allowed)["Distribution"]["Id"] == allowed
        error = refusal(lambda: cloudfront.get_distribution(Id=other))
    assert error["Code"] == "AccessDenied"
    assert f"cloudfront:GetDistribution on resource: {distribution}/{other} " in error["Message"]


def test_target_registrations_are_authorized_per_target_group(aws):
    ec2 = localaws.boto3_client("ec2", aws)
    elb = localaws.boto3_client("elbv2", aws)
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    arns = [
        elb.create_target_group(Name=name, Protocol="HTTP", Port=3001, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
        for name in ("flora-allowed", "flora-other")
    ]
    user = user_with(aws, "elb-mover", {"Action": "elasticloadbalancing:RegisterTargets", "Resource": arns[0]})
    mover = user.client("elbv2", aws)
    with enforcing(aws):
        mover.register_targets(TargetGroupArn=arns[0], Targets=[{"Id": "i-0123456789abcdef0", "Port": 3001}])
        error = refusal(
            lambda: mover.register_targets(
                TargetGroupArn=arns[1], Targets=[{"Id": "i-0123456789abcdef0", "Port": 3001}]
            )
        )
    assert error["Code"] == "AccessDenied"
    assert f"elasticloadbalancing:RegisterTargets on resource: {arns[1]} " in error["Message"]


def test_s3_head_bucket_is_list_bucket_and_delete_objects_is_delete_object_on_each_key(aws):
    s3 = localaws.boto3_client("s3", aws)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
    for key in ("site/a.js", "site/b.js", "private/c.js"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    user = user_with(
        aws,
        "s3-deleter",
        {"Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
        {"Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{BUCKET}/site/*"},
    )
    client = user.client("s3", aws)
    with enforcing(aws):
        client.head_bucket(Bucket=BUCKET)
        deleted = client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "site/a.js"}, {"Key": "site/b.js"}]})
        refused = client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "private/c.js"}]})
        put = refusal(lambda: client.put_object(Bucket=BUCKET, Key="site/d.js", Body=b"x"))
    assert sorted(item["Key"] for item in deleted["Deleted"]) == ["site/a.js", "site/b.js"]
    assert [(item["Key"], item["Code"]) for item in refused["Errors"]] == [("private/c.js", "AccessDenied")]
    assert put["Code"] == "AccessDenied"
    assert f's3:PutObject on resource: "arn:aws:s3:::{BUCKET}/site/d.js" ' in put["Message"]
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["private/c.js"]


def test_outside_enforcing_every_request_goes_through(aws):
    localaws.seed_flora_parameters(aws, "/flora/dev")
    user = user_with(aws, "nobody", {"Action": "sts:GetCallerIdentity", "Resource": "*"})
    ssm = user.client("ssm", aws)
    assert ssm.get_parameters_by_path(Path="/flora/dev")["Parameters"]
    with enforcing(aws):
        assert refusal(lambda: ssm.get_parameters_by_path(Path="/flora/dev"))["Code"] == "AccessDeniedException"
        # The emulator's default keys belong to no IAM user.
        default = localaws.boto3_client("ssm", aws)
        # The emulator answers in XML, which the SSM client does not parse: the code is in the message.
        unknown = refusal(lambda: default.get_parameters_by_path(Path="/flora/dev"))
        assert "<Code>InvalidClientTokenId</Code>" in unknown["Message"], unknown
    assert ssm.get_parameters_by_path(Path="/flora/dev")["Parameters"]
