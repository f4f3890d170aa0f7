# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AccessDenied from AWS, said as what to change: "<identity> may not <action> on <resource>: add the statement
<statement> (flora.deploy.iam_policies, the <policy> policy) to its policy".

AWS names the caller, the action and the resource in most denials ("User: <arn> is not authorized to perform:
<action> on resource: <arn> because ..."); a HEAD request's 403 has no body, and DeleteObjects reports a key it may
not delete with AccessDenied alone. Then the action comes from the operation, the resource from what the module
asked for, and the caller from STS (GetCallerIdentity needs no permission).
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # caught by AnsibleAWSModule

# IAM action -> the policy of flora.deploy.iam_policies and its statement that allows it, for the calls of the
# modules that run on the controller as the deployer, and of those that render the env file on the host.
DEPLOYER_STATEMENTS = {
    "s3:ListBucket": ("deployer", "ListFrontendBucket"),
    "s3:GetObject": ("deployer", "ReadFrontendObjects"),
    "s3:PutObject": ("deployer", "WriteFrontendObjects"),
    "s3:DeleteObject": ("deployer", "DeleteOldFrontendBuilds"),
    "cloudfront:GetDistribution": ("deployer", "ReadDistribution"),
    "cloudfront:ListInvalidations": ("deployer", "ReadDistribution"),
    "cloudfront:GetInvalidation": ("deployer", "ReadDistribution"),
    "cloudfront:CreateInvalidation": ("deployer", "CreateInvalidations"),
    "cloudfront:ListDistributions": ("deployer", "FindDistribution"),
    "ssm:GetParameters": ("deployer", "ReadFrontendBuildParameters"),
}
ENV_FILE_STATEMENTS = {
    "ssm:GetParametersByPath": ("backend-instance", "ReadEnvironmentParameters"),
    "ssm:GetParameters": ("deployer", "ReadFrontendBuildParameters"),
}

# The IAM action of an operation whose denial does not name it.
OPERATION_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "DeleteObjects": "s3:DeleteObject",
    "GetDistribution": "cloudfront:GetDistribution",
    "ListDistributions": "cloudfront:ListDistributions",
    "ListInvalidations": "cloudfront:ListInvalidations",
    "GetInvalidation": "cloudfront:GetInvalidation",
    "CreateInvalidation": "cloudfront:CreateInvalidation",
    "GetParametersByPath": "ssm:GetParametersByPath",
    "GetParameters": "ssm:GetParameters",
}

DENIAL_CODES = {"AccessDenied", "AccessDeniedException", "403"}

_NOT_AUTHORIZED = re.compile(
    r"(?:User: (?P<principal>\S+) )?is not authorized to perform: (?P<action>[\w-]+:\w+)"
    r"(?: on resource: \"?(?P<resource>[^\s\"]+)\"?)?"
)


@dataclass(frozen=True)
class Denial:
    """Who may not do what on which resource; principal is empty when AWS did not say."""

    action: str
    resource: str
    principal: str = ""


def is_denial(error: t.Any) -> bool:
    """Whether a botocore ClientError is AWS refusing the caller."""
    response = getattr(error, "response", None) or {}
    return str((response.get("Error") or {}).get("Code", "")) in DENIAL_CODES


def read_denial(error: t.Any, resource: str) -> Denial | None:
    """The denial in a botocore ClientError, or None when it is another error. resource: what the call was for,
    used when AWS's message does not name it."""
    if not is_denial(error):
        return None
    message = str((error.response.get("Error") or {}).get("Message", ""))
    found = _NOT_AUTHORIZED.search(message)
    if found:
        return Denial(found["action"], found["resource"] or resource, found["principal"] or "")
    operation = getattr(error, "operation_name", "") or ""
    return Denial(OPERATION_ACTIONS.get(operation, operation), resource)


def explain(denial: Denial, statements: t.Mapping[str, tuple[str, str]], principal: str = "") -> str:
    """What the caller may not do, and the statement of flora.deploy.iam_policies that allows it."""
    who = denial.principal or principal or "The caller"
    said = f"{who} may not {denial.action} on {denial.resource}"
    if denial.action in statements:
        policy, statement = statements[denial.action]
        return f"{said}: add the statement {statement} (flora.deploy.iam_policies, the {policy} policy) to its policy"
    return f"{said}: allow {denial.action} on {denial.resource} in its policy"


def caller_arn(module: t.Any) -> str:
    """The caller's ARN from STS, or an empty string when it cannot be read."""
    try:
        return module.client("sts").get_caller_identity()["Arn"]
    except (BotoCoreError, ClientError):
        return ""


def denial_message(
    module: t.Any, error: t.Any, resource: str, statements: t.Mapping[str, tuple[str, str]]
) -> str | None:
    """explain() for a botocore ClientError, asking STS who the caller is when AWS did not say; None when the
    error is not a denial."""
    denial = read_denial(error, resource)
    if denial is None:
        return None
    return explain(denial, statements, "" if denial.principal else caller_arn(module))
