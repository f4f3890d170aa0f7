"""The identities the collection runs as, on the moto server of tests.support.iam_server.

Users, roles and keys are made while the server still allows every request; ``enforcing`` then has it authorize
each request against the caller's policies until the block ends.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support import localaws

ACCOUNT = "123456789012"


def set_authorization(endpoint_url: str, unchecked_calls: str) -> None:
    """How many calls moto lets through before it authorizes each request: "0" enforces, "inf" relaxes."""
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/reset-auth",
        data=unchecked_calls.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@contextmanager
def enforcing(endpoint_url: str) -> Iterator[None]:
    set_authorization(endpoint_url, "0")
    try:
        yield
    finally:
        set_authorization(endpoint_url, "inf")


@dataclass(frozen=True)
class Identity:
    """Credentials of one IAM user or assumed role."""

    arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def environment(self) -> dict[str, str]:
        """AWS_* variables for boto3, the AWS CLI and ansible-playbook, replacing the emulator's default keys."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def client(self, service: str, endpoint_url: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=endpoint_url,
            region_name=localaws.REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token or None,
        )


def policy_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/{name}"


def policy_document(endpoint_url: str, name: str) -> dict:
    """The default version of the managed policy ``name``."""
    iam = localaws.boto3_client("iam", endpoint_url)
    version = iam.get_policy(PolicyArn=policy_arn(name))["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn(name), VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def statement_ids(document: Mapping) -> list[str]:
    return [statement["Sid"] for statement in document["Statement"]]


def without_statement(endpoint_url: str, name: str, sid: str) -> dict:
    """Make a version of the managed policy ``name`` without the statement ``sid`` its default; returns it. A policy
    of that one statement is detached from every user and role instead (IAM keeps no policy without one)."""
    iam = localaws.boto3_client("iam", endpoint_url)
    document = policy_document(endpoint_url, name)
    kept = [statement for statement in document["Statement"] if statement["Sid"] != sid]
    assert len(kept) == len(document["Statement"]) - 1, f"{name} has no statement {sid}"
    reduced = {**document, "Statement": kept}
    if kept:
        iam.create_policy_version(PolicyArn=policy_arn(name), PolicyDocument=json.dumps(reduced), SetAsDefault=True)
        return reduced
    entities = iam.list_entities_for_policy(PolicyArn=policy_arn(name))
    for user in entities["PolicyUsers"]:
        iam.detach_user_policy(UserName=user["UserName"], PolicyArn=policy_arn(name))
    for role in entities["PolicyRoles"]:
        iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=policy_arn(name))
    return reduced


def create_user(endpoint_url: str, name: str, policies: Sequence[str]) -> Identity:
    """An IAM user with the managed policies attached and an access key, as a CI or AWX credential has."""
    iam = localaws.boto3_client("iam", endpoint_url)
    user = iam.create_user(UserName=name)["User"]
    for policy in policies:
        iam.attach_user_policy(UserName=name, PolicyArn=policy_arn(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Identity(user["Arn"], key["AccessKeyId"], key["SecretAccessKey"])


def assume_role(endpoint_url: str, role_name: str, session_name: str) -> Identity:
    """Credentials of the role, as an instance with its instance profile gets them."""
    sts = localaws.boto3_client("sts", endpoint_url)
    response = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role_name}", RoleSessionName=session_name)
    credentials = response["Credentials"]
    return Identity(
        response["AssumedRoleUser"]["Arn"],
        credentials["AccessKeyId"],
        credentials["SecretAccessKey"],
        credentials["SessionToken"],
    )
