from __future__ import annotations

import botocore.exceptions
import pytest

from ansible_collections.flora.deploy.plugins.module_utils.access_denied import (
    DEPLOYER_STATEMENTS,
    ENV_FILE_STATEMENTS,
    Denial,
    explain,
    is_denial,
    read_denial,
)

CALLER = "arn:aws:iam::123456789012:user/flora-prod-awx"
# What the module asked for, when AWS does not say.
ASKED = "arn:aws:s3:::flora-site/*"


def client_error(code: str, message: str, operation: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("code", "message", "operation", "expected"),
    [
        pytest.param(
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/flora-dev-backend/i-0abc is not authorized to perform: "
            "ssm:GetParametersByPath on resource: arn:aws:ssm:ap-southeast-2:123456789012:parameter/flora/prod "
            "because no identity-based policy allows the ssm:GetParametersByPath action",
            "GetParametersByPath",
            Denial(
                "ssm:GetParametersByPath",
                "arn:aws:ssm:ap-southeast-2:123456789012:parameter/flora/prod",
                "arn:aws:sts::123456789012:assumed-role/flora-dev-backend/i-0abc",
            ),
            id="SSM",
        ),
        pytest.param(
            "AccessDenied",
            f'User: {CALLER} is not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::flora-site/index.html" '
            "because no identity-based policy allows the s3:PutObject action",
            "PutObject",
            Denial("s3:PutObject", "arn:aws:s3:::flora-site/index.html", CALLER),
            id="S3, the resource quoted",
        ),
        pytest.param(
            "AccessDenied",
            f"User: {CALLER} is not authorized to perform: ec2:DescribeInstances because no identity-based policy "
            "allows the ec2:DescribeInstances action",
            "DescribeInstances",
            Denial("ec2:DescribeInstances", ASKED, CALLER),
            id="no resource named",
        ),
        pytest.param("403", "Forbidden", "HeadObject", Denial("s3:GetObject", ASKED), id="HEAD without a body"),
        pytest.param("AccessDenied", "Access Denied", "ListObjectsV2", Denial("s3:ListBucket", ASKED)),
    ],
)
def test_read_denial_takes_what_aws_says_and_the_operation_for_the_rest(code, message, operation, expected):
    assert read_denial(client_error(code, message, operation), ASKED) == expected


def test_other_errors_are_not_denials():
    error = client_error("NoSuchBucket", "The specified bucket does not exist", "ListObjectsV2")
    assert not is_denial(error)
    assert read_denial(error, "s3://flora-site") is None
    assert read_denial(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), "x") is None


def test_explain_names_the_statement_that_allows_the_action():
    denial = Denial("s3:DeleteObject", "arn:aws:s3:::flora-site/assets/a-1234abcd.js", CALLER)
    assert explain(denial, DEPLOYER_STATEMENTS) == (
        f"{CALLER} may not s3:DeleteObject on arn:aws:s3:::flora-site/assets/a-1234abcd.js: add the statement "
        "DeleteOldFrontendBuilds (flora.deploy.iam_policies, the deployer policy) to its policy"
    )


def test_explain_takes_the_caller_from_sts_when_aws_did_not_say():
    denial = Denial("ssm:GetParametersByPath", "the parameters under /flora/prod")
    assert explain(denial, ENV_FILE_STATEMENTS, "arn:aws:sts::1:assumed-role/flora-prod-backend/i-1") == (
        "arn:aws:sts::1:assumed-role/flora-prod-backend/i-1 may not ssm:GetParametersByPath on the parameters under "
        "/flora/prod: add the statement ReadEnvironmentParameters (flora.deploy.iam_policies, the backend-instance "
        "policy) to its policy"
    )
    assert explain(denial, ENV_FILE_STATEMENTS).startswith("The caller may not ssm:GetParametersByPath")


def test_an_action_no_statement_allows_is_named_with_its_resource():
    denial = Denial("kms:Decrypt", "arn:aws:kms:ap-southeast-2:1:key/k", CALLER)
    assert explain(denial, DEPLOYER_STATEMENTS) == (
        f"{CALLER} may not kms:Decrypt on arn:aws:kms:ap-southeast-2:1:key/k: allow kms:Decrypt on "
        "arn:aws:kms:ap-southeast-2:1:key/k in its policy"
    )
