"""The identities the collection runs as, on the moto server of tests.support.iam_server.

Users, roles and keys are made while the server still allows every request; ``enforcing`` then has it authorize
each request against the caller's policies until the block ends. ``production_identities`` makes the three
identities of one environment with the policies playbooks/create_iam_policies.yml renders for its resources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import COLLECTIONS, REPO, ensure_collection_link
from tests.support import localaws

ACCOUNT = "123456789012"
# The trust policy of the backend's instance role (roles/iam_policies/vars/main.yml).
INSTANCE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# Stand-ins for the IDs AWS makes up, so that the documents of one set of settings are rendered once per process
# and the test's own IDs are put in after.
MADE_UP_IDS = {
    "iam_policies_distribution_id": "E0STANDIN0DISTRIBUTION",
    "iam_policies_target_group_arn": (
        f"arn:aws:elasticloadbalancing:{localaws.REGION}:{ACCOUNT}:targetgroup/stand-in/0000000000000000"
    ),
}
_rendered: dict[str, dict[str, dict]] = {}


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

    def credentials_file(self) -> str:
        """The identity as an AWS shared credentials file's default profile."""
        lines = [
            "[default]",
            f"aws_access_key_id = {self.access_key_id}",
            f"aws_secret_access_key = {self.secret_access_key}",
        ]
        if self.session_token:
            lines.append(f"aws_session_token = {self.session_token}")
        return "\n".join(lines) + "\n"

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


def user_with_policy(endpoint_url: str, name: str, document: Mapping) -> Identity:
    """A new IAM user ``name`` with a managed policy of the same name and an access key."""
    iam = localaws.boto3_client("iam", endpoint_url)
    iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
    return create_user(endpoint_url, name, [name])


def administrator(endpoint_url: str) -> Identity:
    """Someone who may do anything in the account, as an administrator's own credentials may."""
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    return user_with_policy(endpoint_url, "administrator", allow_all)


def origin_access(endpoint_url: str, bucket: str) -> Identity:
    """What a distribution reads its private bucket as: CloudFront's origin access control, which the bucket's
    policy lets get the bucket's objects and nothing else (so a key the bucket lacks answers 403, not 404)."""
    read_objects = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }
    # One user for each distribution stand-in: several may serve one bucket.
    return user_with_policy(endpoint_url, f"cloudfront-origin-access-{uuid.uuid4().hex[:12]}", read_objects)


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


@dataclass(frozen=True)
class Identities:
    """The identities of one environment: the backend's instances, the deployer (CI or AWX), the inventory."""

    instance: Identity
    deployer: Identity
    inventory: Identity


def rendered_policies(variables: Mapping) -> dict[str, dict]:
    """Policy name -> the document playbooks/create_iam_policies.yml renders for these variables."""
    stand_ins = {name: made_up for name, made_up in MADE_UP_IDS.items() if variables.get(name)}
    key = json.dumps({**variables, **stand_ins}, sort_keys=True)
    if key not in _rendered:
        _rendered[key] = render_policies({**variables, **stand_ins})
    text = json.dumps(_rendered[key])
    for name, made_up in stand_ins.items():
        text = text.replace(made_up, variables[name])
    return json.loads(text)


def render_policies(variables: Mapping) -> dict[str, dict]:
    ensure_collection_link()
    with tempfile.TemporaryDirectory(prefix="flora-policies-") as dest:
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_LOCAL_TEMP=str(Path(dest) / "tmp"),
        )
        extra = {**variables, "iam_policies_create": False, "iam_policies_dest": str(Path(dest) / "policies")}
        subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(REPO / "inventory" / "localhost.yml"),
                str(REPO / "playbooks" / "create_iam_policies.yml"),
                "-e",
                json.dumps(extra),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return {path.stem: json.loads(path.read_text()) for path in (Path(dest) / "policies").glob("*.json")}


# The iam_policies setting that follows each of the collection's variables (roles/iam_policies/README.md).
SETTING_OF = {
    "frontend_publish_bucket": "frontend_bucket",
    "frontend_publish_prefix": "frontend_prefix",
    "frontend_publish_distribution_id": "distribution_id",
    "backend_redeploy_target_group_arn": "target_group_arn",
    "backend_redeploy_backup_bucket": "backup_bucket",
}
# (endpoint, environment) -> (the settings, the identities) made since the emulator's last reset.
_made: dict[tuple[str, str], tuple[dict, Identities]] = {}


def settings_of(variables: Mapping) -> dict:
    """The iam_policies settings (without the prefix) for a run with these variables, as a user would set them."""
    settings = {setting: variables[name] for name, setting in SETTING_OF.items() if variables.get(name)}
    if variables.get("frontend_publish_distribution_alias") or variables.get("frontend_publish_distribution_comment"):
        settings["distribution_lookup"] = True
    return settings


def forget(endpoint_url: str) -> None:
    """The emulator at endpoint_url was reset: none of the identities made on it exist any more."""
    for key in [key for key in _made if key[0] == endpoint_url]:
        del _made[key]


def production_identities(endpoint_url: str, environment: str = "prod", **settings) -> Identities:
    """The environment's identities, with the policies the collection ships for the resources ``settings`` name
    (frontend_bucket=..., distribution_id=...: iam_policies_* without the prefix). Asked again for the same
    environment with other settings, the policies get the new documents and the identities stay."""
    variables = {"flora_environment": environment, "iam_policies_account_id": ACCOUNT}
    variables.update({f"iam_policies_{name}": value for name, value in settings.items()})
    documents = rendered_policies(variables)
    iam = localaws.boto3_client("iam", endpoint_url)
    made = _made.get((endpoint_url, environment))
    if made is not None:
        if made[0] != settings:
            for name, document in documents.items():
                replace_policy(iam, name, document)
            _made[endpoint_url, environment] = (settings, made[1])
        return made[1]
    for name, document in documents.items():
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
    prefix = f"flora-{environment}"
    iam.create_role(RoleName=f"{prefix}-backend", AssumeRolePolicyDocument=json.dumps(INSTANCE_TRUST))
    iam.attach_role_policy(RoleName=f"{prefix}-backend", PolicyArn=policy_arn(f"{prefix}-backend-instance"))
    made_now = Identities(
        instance=assume_role(endpoint_url, f"{prefix}-backend", f"i-0{environment}0backend"),
        deployer=create_user(endpoint_url, f"{prefix}-deployer", [f"{prefix}-deployer"]),
        inventory=create_user(endpoint_url, f"{prefix}-inventory-source", [f"{prefix}-inventory"]),
    )
    _made[endpoint_url, environment] = (settings, made_now)
    return made_now


@contextmanager
def in_production(endpoint_url: str, environment: str = "prod", **settings) -> Iterator[Identities]:
    """Until the block ends: the environment's identities (production_identities), the emulator authorizing every
    request as AWS does, and this process's own calls (localaws.boto3_client, aws_environment) an administrator's."""
    made = production_identities(endpoint_url, environment, **settings)
    own = administrator(endpoint_url)
    localaws.OWN_KEYS[endpoint_url] = (own.access_key_id, own.secret_access_key)
    set_authorization(endpoint_url, "0")
    try:
        yield made
    finally:
        set_authorization(endpoint_url, "inf")
        localaws.OWN_KEYS.pop(endpoint_url, None)
        forget(endpoint_url)


def replace_policy(iam, name: str, document: Mapping) -> None:
    """Make ``document`` the only version of the managed policy ``name``."""
    arn = policy_arn(name)
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
