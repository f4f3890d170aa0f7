"""playbooks/create_iam_policies.yml (role flora.deploy.iam_policies), and the collection's flows run as the
identities those policies are for, on a moto server that authorizes every request against the caller's IAM
policies, per resource (tests/support/iam_server.py): the backend's env render as the instance role, the frontend
publish and the target group moves as the deployer, the inventory as the inventory source. Each statement is
shown to be needed: without it, the flow that needs it fails, naming the permission (this collection's modules
also name the statement to add)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.access_denied import DEPLOYER_STATEMENTS, ENV_FILE_STATEMENTS
from tests.integration.conftest import REPO
from tests.integration.test_dotenv_roundtrip import read_with_npm_dotenv
from tests.integration.test_frontend_publish import (
    BUCKET,
    PUBLISH,
    changed_count,
    copy_app,
    invalidations,
    site_objects,
    site_variables,
    write_generated_build,
)
from tests.integration.test_inventory import launch, plain, run_inventory
from tests.support import hostside, identities, localaws
from tests.support.identities import enforcing

ENVIRONMENT = "dev"
PREFIX = f"flora-{ENVIRONMENT}"
INSTANCE_POLICY = f"{PREFIX}-backend-instance"
DEPLOYER_POLICY = f"{PREFIX}-deployer"
INVENTORY_POLICY = f"{PREFIX}-inventory"
INSTANCE_ROLE = f"{PREFIX}-backend"
INVENTORY = REPO / "inventory" / "aws_ec2.yml"
SAMPLE_BUILD = REPO / "tests" / "fixtures" / "sample-build"
BACKUP_BUCKET = "flora-backups-test"
RDS_INSTANCE = "flora-dev-db"
DB_NAME, DB_USER, DB_PASSWORD = "flora_db", "flora_app", "backup-test-password"
NO_BACKUP_STATEMENT = (
    "The instance role may write no database backup: iam_policies_backup is pg_dump and iam_policies_backup_bucket "
    "is empty."
)


# ---------------------------------------------------------------------------
# Helpers


def create_resources(endpoint: str) -> dict:
    """What the dev environment has: its parameters (and prod's beside them), the frontend's bucket and
    distribution, a backend instance in a target group."""
    for environment in ("dev", "prod"):
        localaws.seed_flora_parameters(endpoint, f"/flora/{environment}")
    distribution_id = localaws.create_site(endpoint, BUCKET)
    ec2 = localaws.boto3_client("ec2", endpoint)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = launch(ec2, image, "flora-backend-production", Role="backend", Environment="dev")
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    elb = localaws.boto3_client("elbv2", endpoint)
    target_group_arn = elb.create_target_group(
        Name="flora-dev-backend", Protocol="HTTP", Port=3001, VpcId=vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": instance_id, "Port": 3001}])
    return {"distribution_id": distribution_id, "instance_id": instance_id, "target_group_arn": target_group_arn}


def policy_variables(resources: dict, **extra) -> dict:
    return {
        "flora_environment": ENVIRONMENT,
        "iam_policies_account_id": identities.ACCOUNT,
        "iam_policies_frontend_bucket": BUCKET,
        "iam_policies_distribution_id": resources["distribution_id"],
        "iam_policies_target_group_arn": resources["target_group_arn"],
        "iam_policies_backup_bucket": BACKUP_BUCKET,
        **extra,
    }


def create_policies(run, resources: dict, *args: str, **extra):
    """playbooks/create_iam_policies.yml, with the emulator's default (unchecked) credentials."""
    result = run(str(REPO / "playbooks" / "create_iam_policies.yml"), policy_variables(resources, **extra), *args)
    assert result.rc == 0, result
    return result


class DevIdentities:
    """The three identities of the dev environment, made once the policies exist."""

    def __init__(self, endpoint: str):
        self.instance = identities.assume_role(endpoint, INSTANCE_ROLE, "i-0dev0backend0001")
        self.deployer = identities.create_user(endpoint, f"{PREFIX}-awx", [DEPLOYER_POLICY])
        self.inventory = identities.create_user(endpoint, f"{PREFIX}-inventory-source", [INVENTORY_POLICY])


@pytest.fixture(scope="module")
def database() -> int:
    """A PostgreSQL database to back up; its port."""
    with hostside.postgres(DB_NAME, DB_USER, DB_PASSWORD) as port:
        yield port


@pytest.fixture
def dev(aws, run_playbook):
    resources = create_resources(aws)
    create_policies(run_playbook, resources)
    return {"endpoint": aws, "run": run_playbook, "resources": resources, "as": DevIdentities(aws)}


def render_backend_env(dev: dict, identity: identities.Identity, environment: str = ENVIRONMENT):
    return dev["run"]("iam/backend_env.yml", {"flora_environment": environment}, env=identity.environment())


def publish(dev: dict, **variables):
    """publish_frontend.yml as the deployer."""
    settings = site_variables(dev["endpoint"], dev["resources"]["distribution_id"], **variables)
    return dev["run"](PUBLISH, settings, env=dev["as"].deployer.environment())


def publish_sample(dev: dict, tmp_path: Path, **extra):
    """A build directory published as it is (no build, no build-time env)."""
    dist = tmp_path / "dist"
    if not dist.exists():
        shutil.copytree(SAMPLE_BUILD, dist)
    return publish(dev, **{"frontend_publish_build": False, "frontend_publish_build_dir": str(dist), **extra})


def publish_two_builds(dev: dict, tmp_path: Path):
    """Two builds published one after the other, keeping none before: the second deletes the first's files."""
    dist = tmp_path / "dist"
    write_generated_build(dist, "aAaA", chunks=3)
    first = publish_sample(dev, tmp_path, frontend_publish_keep_previous=0)
    assert first.rc == 0, first
    write_generated_build(dist, "bBbB", chunks=3)
    return publish_sample(dev, tmp_path, frontend_publish_keep_previous=0)


def publish_with_build_env(dev: dict, tmp_path: Path, **extra):
    """publish_frontend.yml as the deployer, rendering the build-time env from Parameter Store. pnpm is `true`
    and the build is already in dist: what these runs check happens before the build."""
    app = copy_app(tmp_path)
    shutil.copytree(SAMPLE_BUILD, app / "apps" / "frontend" / "dist")
    return publish(
        dev,
        frontend_publish_app_dir=str(app),
        frontend_publish_pnpm="true",
        flora_environment=ENVIRONMENT,
        **extra,
    )


def publish_by_alias(dev: dict, tmp_path: Path):
    """The sample build published to the distribution found by its alias, as the deployer."""
    return publish_sample(
        dev,
        tmp_path,
        frontend_publish_distribution_id="",
        frontend_publish_distribution_alias=f"{BUCKET}.flora.example",
    )


def take_backup(dev: dict, tmp_path: Path, database: int):
    """The pg_dump backup before a migration, streamed to the backup bucket as the instance role."""
    env_file = tmp_path / "backend.env"
    env_file.write_text(f"DATABASE_URL=postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{database}/{DB_NAME}\n")
    variables = {"backup": "pg_dump", "backup_bucket": BACKUP_BUCKET, "env_file": str(env_file)}
    return dev["run"]("iam/backup.yml", variables, env=dev["as"].instance.environment())


def take_snapshot(dev: dict):
    """The RDS snapshot before a migration, taken from the controller as the deployer."""
    variables = {"backup": "rds_snapshot", "rds_instance": RDS_INSTANCE}
    return dev["run"]("iam/backup.yml", variables, env=dev["as"].deployer.environment())


def move_target(dev: dict):
    variables = {
        "backend_redeploy_target_group_arn": dev["resources"]["target_group_arn"],
        "backend_redeploy_target_id": dev["resources"]["instance_id"],
    }
    return dev["run"]("iam/target_group.yml", variables, env=dev["as"].deployer.environment())


def one_line(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------
# The policies


def test_the_playbook_creates_one_policy_per_identity_and_the_instance_role(aws, run_playbook, tmp_path):
    resources = create_resources(aws)
    dest = tmp_path / "policies"
    iam = localaws.boto3_client("iam", aws)
    checked = create_policies(run_playbook, resources, "--check", iam_policies_dest=str(dest))
    assert changed_count(checked.output) > 0
    assert iam.list_policies(Scope="Local")["Policies"] == []
    assert iam.list_roles()["Roles"] == []
    assert not dest.exists()

    first = create_policies(run_playbook, resources, iam_policies_dest=str(dest))
    again = create_policies(run_playbook, resources, iam_policies_dest=str(dest))
    assert changed_count(first.output) > 0
    assert NO_BACKUP_STATEMENT not in one_line(first.output)
    assert changed_count(again.output) == 0, again

    created = {policy["PolicyName"] for policy in iam.list_policies(Scope="Local")["Policies"]}
    assert created == {INSTANCE_POLICY, DEPLOYER_POLICY, INVENTORY_POLICY}
    profile = iam.get_instance_profile(InstanceProfileName=INSTANCE_ROLE)["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == [INSTANCE_ROLE]
    attached = iam.list_attached_role_policies(RoleName=INSTANCE_ROLE)["AttachedPolicies"]
    assert [policy["PolicyName"] for policy in attached] == [INSTANCE_POLICY]
    trust = iam.get_role(RoleName=INSTANCE_ROLE)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}

    # The files written for review are the documents IAM holds.
    for name in created:
        assert json.loads((dest / f"{name}.json").read_text()) == identities.policy_document(aws, name)

    parameter = f"arn:aws:ssm:{localaws.REGION}:{identities.ACCOUNT}:parameter"
    instance = identities.policy_document(aws, INSTANCE_POLICY)
    assert identities.statement_ids(instance) == [
        "ReadEnvironmentParameters",
        "WriteAgentLogStreams",
        "CreateAgentLogGroup",
        "WriteDatabaseBackups",
    ]
    assert instance["Statement"][0]["Action"] == ["ssm:GetParametersByPath"]
    assert instance["Statement"][0]["Resource"] == [f"{parameter}/flora/dev", f"{parameter}/flora/dev/*"]
    assert instance["Statement"][3]["Resource"] == [f"arn:aws:s3:::{BACKUP_BUCKET}/db-backups/*"]

    deployer = identities.policy_document(aws, DEPLOYER_POLICY)
    assert identities.statement_ids(deployer) == [
        "ListFrontendBucket",
        "ReadFrontendObjects",
        "WriteFrontendObjects",
        "DeleteOldFrontendBuilds",
        "ReadDistribution",
        "CreateInvalidations",
        "ReadFrontendBuildParameters",
        "DescribeInstances",
        "DescribeTargetGroups",
        "MoveTargets",
    ]
    statements = {statement["Sid"]: statement for statement in deployer["Statement"]}
    assert statements["ReadFrontendBuildParameters"]["Resource"] == [
        f"{parameter}/flora/dev/{name}"
        for name in ("auth0_domain", "auth0_client_id", "auth0_audience", "stripe_publishable_key")
    ]
    assert statements["CreateInvalidations"]["Resource"] == [
        f"arn:aws:cloudfront::{identities.ACCOUNT}:distribution/{resources['distribution_id']}"
    ]
    assert statements["MoveTargets"]["Resource"] == [resources["target_group_arn"]]
    assert identities.policy_document(aws, INVENTORY_POLICY)["Statement"] == [
        {"Sid": "DescribeInstances", "Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": ["*"]}
    ]

    # The statements the modules name when AWS refuses them are these policies' statements for those actions.
    documents = {"backend-instance": instance, "deployer": deployer}
    for action, (policy, sid) in {**DEPLOYER_STATEMENTS, **ENV_FILE_STATEMENTS}.items():
        if sid == "FindDistribution":
            continue
        named = next(statement for statement in documents[policy]["Statement"] if statement["Sid"] == sid)
        assert action in named["Action"], (action, sid)


def test_an_account_id_that_is_not_twelve_digits_fails_before_anything_is_rendered(run_playbook, tmp_path):
    dest = tmp_path / "policies"
    variables = {
        "flora_environment": ENVIRONMENT,
        "iam_policies_account_id": "12345",
        "iam_policies_frontend_bucket": BUCKET,
        "iam_policies_distribution_id": "E2EXAMPLE12345",
        "iam_policies_create": False,
        "iam_policies_dest": str(dest),
    }
    result = run_playbook(str(REPO / "playbooks" / "create_iam_policies.yml"), variables)
    assert result.rc == 2, result
    assert "iam_policies_account_id must be the 12 digits of an AWS account ID, not 12345" in one_line(result.output)
    assert not dest.exists()

    written = run_playbook(
        str(REPO / "playbooks" / "create_iam_policies.yml"),
        {**variables, "iam_policies_account_id": identities.ACCOUNT},
    )
    assert written.rc == 0, written
    # No backup bucket with the default pg_dump backup: the instance role gets no backup statement, and the run
    # says so (test_the_playbook_creates_one_policy_per_identity_and_the_instance_role has one, and no such line).
    assert NO_BACKUP_STATEMENT in one_line(written.output)
    assert sorted(path.name for path in dest.iterdir()) == [
        f"{name}.json" for name in sorted([INSTANCE_POLICY, DEPLOYER_POLICY, INVENTORY_POLICY])
    ]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "iam_policies_frontend_bucket",
            "s3://flora-frontend-prod/",
            "iam_policies_frontend_bucket must be a bucket's name (not an s3:// URL or an ARN), not s3://flora-frontend-prod/",
        ),
        (
            "iam_policies_distribution_id",
            "dzmu16crq41il.cloudfront.net",
            (
                "iam_policies_distribution_id must be a CloudFront distribution's ID, such as E2QWRUHAPOMQZL (not its domain "
                "name or ARN), not dzmu16crq41il.cloudfront.net"
            ),
        ),
        (
            "iam_policies_target_group_arn",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/flora-backend/0123456789abcdef",
            (
                "iam_policies_target_group_arn must be the ARN of a target group in ap-southeast-2 and account "
                "123456789012"
            ),
        ),
    ],
    ids=["bucket-url", "distribution-domain", "target-group-elsewhere"],
)
def test_a_resource_that_is_not_named_as_its_arn_needs_fails_before_anything_is_rendered(
    run_playbook, tmp_path, variable, value, message
):
    dest = tmp_path / "policies"
    variables = {
        "iam_policies_account_id": identities.ACCOUNT,
        "iam_policies_frontend_bucket": BUCKET,
        "iam_policies_create": False,
        "iam_policies_dest": str(dest),
        variable: value,
    }
    result = run_playbook(str(REPO / "playbooks" / "create_iam_policies.yml"), variables)
    assert result.rc == 2, result
    assert message in one_line(result.output)
    assert not dest.exists()


def test_the_policies_are_for_the_region_the_playbooks_run_in(run_playbook, tmp_path):
    dest = tmp_path / "policies"
    variables = {
        "flora_aws_region": "us-east-1",
        "iam_policies_account_id": identities.ACCOUNT,
        "iam_policies_create": False,
        "iam_policies_dest": str(dest),
        "iam_policies_backup": "rds_snapshot",
    }
    result = run_playbook(str(REPO / "playbooks" / "create_iam_policies.yml"), variables)
    assert result.rc == 0, result
    instance = json.loads((dest / "flora-prod-backend-instance.json").read_text())
    assert instance["Statement"][0]["Resource"] == [
        f"arn:aws:ssm:us-east-1:{identities.ACCOUNT}:parameter/flora/prod",
        f"arn:aws:ssm:us-east-1:{identities.ACCOUNT}:parameter/flora/prod/*",
    ]
    # An RDS snapshot backup without the instance to snapshot: no statement for it, and the run says so.
    deployer = json.loads((dest / "flora-prod-deployer.json").read_text())
    assert "SnapshotDatabase" not in identities.statement_ids(deployer)
    assert (
        "The deployer may snapshot no database: iam_policies_backup is rds_snapshot and "
        "iam_policies_backup_rds_instance is empty."
    ) in one_line(result.output)


def test_optional_statements_follow_the_settings(aws, run_playbook, tmp_path):
    resources = create_resources(aws)
    dest = tmp_path / "policies"
    create_policies(
        run_playbook,
        resources,
        iam_policies_create=False,
        iam_policies_dest=str(dest),
        iam_policies_parameter_kms_key_arn="arn:aws:kms:ap-southeast-2:123456789012:key/1234abcd",
        iam_policies_agent_metrics=True,
        iam_policies_distribution_lookup=True,
        iam_policies_backup="rds_snapshot",
        iam_policies_backup_rds_instance="flora-db",
        iam_policies_target_group_arn="",
    )
    assert localaws.boto3_client("iam", aws).list_policies(Scope="Local")["Policies"] == []
    instance = json.loads((dest / f"{INSTANCE_POLICY}.json").read_text())
    assert identities.statement_ids(instance) == [
        "ReadEnvironmentParameters",
        "DecryptEnvironmentParameters",
        "WriteAgentLogStreams",
        "CreateAgentLogGroup",
        "PutAgentMetrics",
    ]
    decrypt = instance["Statement"][1]
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "ssm.ap-southeast-2.amazonaws.com"}}
    deployer = json.loads((dest / f"{DEPLOYER_POLICY}.json").read_text())
    ids = identities.statement_ids(deployer)
    assert "FindDistribution" in ids and "SnapshotDatabase" in ids
    find = next(statement for statement in deployer["Statement"] if statement["Sid"] == "FindDistribution")
    assert DEPLOYER_STATEMENTS["cloudfront:ListDistributions"] == ("deployer", "FindDistribution")
    assert find["Action"] == ["cloudfront:ListDistributions"]
    assert "MoveTargets" not in ids and "DescribeTargetGroups" not in ids
    snapshot = next(statement for statement in deployer["Statement"] if statement["Sid"] == "SnapshotDatabase")
    assert snapshot["Action"] == ["rds:AddTagsToResource", "rds:CreateDBSnapshot", "rds:DescribeDBSnapshots"]
    assert snapshot["Resource"] == [
        "arn:aws:rds:ap-southeast-2:123456789012:db:flora-db",
        "arn:aws:rds:ap-southeast-2:123456789012:snapshot:flora-db-*",
    ]


# ---------------------------------------------------------------------------
# Each flow as its identity


def test_the_backend_env_renders_as_the_instance_role(dev, tmp_path):
    with enforcing(dev["endpoint"]):
        result = render_backend_env(dev, dev["as"].instance)
    assert result.rc == 0, result
    assert read_with_npm_dotenv(tmp_path / "backend.env") == localaws.expected_backend_env(
        "https://flora.example", "flora-db.internal:5432"
    )


def test_a_dev_instance_cannot_read_the_prod_parameters(dev, tmp_path):
    with enforcing(dev["endpoint"]):
        result = render_backend_env(dev, dev["as"].instance, environment="prod")
    assert result.rc == 2, result
    assert (
        f"Access denied reading parameters under /flora/prod: {dev['as'].instance.arn} may not "
        f"ssm:GetParametersByPath on arn:aws:ssm:{localaws.REGION}:{identities.ACCOUNT}:parameter/flora/prod: add the "
        "statement ReadEnvironmentParameters (flora.deploy.iam_policies, the backend-instance policy) to its policy"
    ) in one_line(result.output)
    assert not (tmp_path / "backend.env").exists()
    for value in localaws.FLORA_SECURE_PARAMETERS.values():
        assert value not in result.output


def test_the_frontend_publishes_as_the_deployer(dev, tmp_path):
    with enforcing(dev["endpoint"]):
        result = publish_with_build_env(dev, tmp_path)
    assert result.rc == 0, result
    published = json.loads((tmp_path / "result.json").read_text())
    assert published["publish"]["uploaded"] == 6
    # The secret scan ran; the deployer may not read the environment's parameters by path, and the CI's checkout
    # has no backend env file, so it had nothing to look for, and says so.
    assert published["publish"]["secret_scan"]["parameters_readable"] is False
    assert published["publish"]["secret_scan"]["secrets"] == 0
    assert published["publish"]["secret_scan"]["files"] > 0
    unchecked = (
        "The build was not checked for secrets: this caller may not read the SecureString parameters under "
        "/flora/dev (ssm:GetParametersByPath)"
    )
    assert one_line(result.output).count(unchecked) == 1
    assert "DEPRECATION WARNING" not in result.output
    assert [item["ok"] for item in published["verify"]["checked"]] == [True] * 4
    assert invalidations(dev["endpoint"], dev["resources"]["distribution_id"]) == [
        sorted(published["invalidation"]["paths"])
    ]
    env = (tmp_path / "flora-app" / "apps" / "frontend" / ".env").read_text()
    assert "VITE_AUTH0_DOMAIN='flora-demo.au.auth0.com'" in env


def test_a_required_secret_scan_needs_the_backend_env_file_beside_the_deployers_build(dev, tmp_path):
    with enforcing(dev["endpoint"]):
        refused = publish_with_build_env(dev, tmp_path, frontend_publish_secret_scan_required=True)
    assert refused.rc == 2, refused
    assert (
        "The build was not checked for secrets: this caller may not read the SecureString parameters under "
        "/flora/dev (ssm:GetParametersByPath); no env file of "
    ) in one_line(refused.output)
    assert "Nothing was written (secret_scan_required)." in one_line(refused.output)
    assert site_objects(localaws.boto3_client("s3", dev["endpoint"])) == {}

    # The backend's secrets beside the build, as a CI secret would put them: scanned for, and published.
    backend_env = tmp_path / "flora-app" / "apps" / "backend" / ".env"
    backend_env.write_text("JWT_SECRET=jwt-secret-of-the-ci\nSMTP_PASS=smtp-password-of-the-ci\n")
    with enforcing(dev["endpoint"]):
        result = publish(
            dev,
            frontend_publish_build=False,
            frontend_publish_build_dir=str(tmp_path / "flora-app" / "apps" / "frontend" / "dist"),
            frontend_publish_secret_scan_env_files=[str(backend_env)],
            frontend_publish_secret_scan_required=True,
        )
    assert result.rc == 0, result
    scan = json.loads((tmp_path / "result.json").read_text())["publish"]["secret_scan"]
    assert scan["secrets"] == 2 and scan["parameters_readable"] is False


def test_old_builds_are_deleted_as_the_deployer(dev, tmp_path):
    with enforcing(dev["endpoint"]):
        result = publish_two_builds(dev, tmp_path)
    assert result.rc == 0, result
    deleted = json.loads((tmp_path / "result.json").read_text())["publish"]["deleted_keys"]
    assert [key for key in deleted if "aAaA" in key] != []
    keys = site_objects(localaws.boto3_client("s3", dev["endpoint"]))
    assert [key for key in keys if "aAaA" in key] == []
    assert [key for key in keys if "bBbB" in key] != []


def test_the_deployer_cannot_read_the_backend_secrets(dev, tmp_path):
    ssm = dev["as"].deployer.client("ssm", dev["endpoint"])
    with enforcing(dev["endpoint"]):
        for name in localaws.FLORA_SECURE_PARAMETERS:
            with pytest.raises(ssm.exceptions.ClientError) as denied:
                ssm.get_parameters(Names=[f"/flora/dev/{name}"], WithDecryption=True)
            assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        with pytest.raises(ssm.exceptions.ClientError):
            ssm.get_parameters_by_path(Path="/flora/dev", Recursive=True, WithDecryption=True)
        # A build-time key mapped to a secret: the publish stops at the read, and nothing of the secret shows.
        result = publish_with_build_env(
            dev, tmp_path, frontend_publish_env_extra_parameters={"VITE_STRIPE_KEY": "stripe_secret_key"}
        )
    assert result.rc == 2, result
    message = one_line(result.output)
    assert (
        "ssm:GetParameters on resource: arn:aws:ssm:ap-southeast-2:123456789012:parameter/flora/dev/stripe_secret_key"
        in message
    )
    assert localaws.FLORA_SECURE_PARAMETERS["stripe_secret_key"] not in result.output
    assert not (tmp_path / "flora-app" / "apps" / "frontend" / ".env").exists()
    assert site_objects(localaws.boto3_client("s3", dev["endpoint"])) == {}


def test_the_backup_before_a_migration_is_written_as_the_instance_role(dev, tmp_path, database):
    prepare_flow("backup", dev)
    with enforcing(dev["endpoint"]):
        result = take_backup(dev, tmp_path, database)
    assert result.rc == 0, result
    listed = localaws.boto3_client("s3", dev["endpoint"]).list_objects_v2(Bucket=BACKUP_BUCKET)["Contents"]
    assert [item["Key"].split("/")[:2] for item in listed] == [["db-backups", DB_NAME]]
    assert listed[0]["Size"] > 0


def test_the_rds_snapshot_before_a_migration_is_taken_as_the_deployer(dev):
    prepare_flow("snapshot", dev)
    with enforcing(dev["endpoint"]):
        result = take_snapshot(dev)
    assert result.rc == 0, result
    rds = localaws.boto3_client("rds", dev["endpoint"])
    snapshots = rds.describe_db_snapshots(DBInstanceIdentifier=RDS_INSTANCE, SnapshotType="manual")["DBSnapshots"]
    assert [snapshot["DBSnapshotIdentifier"] for snapshot in snapshots] == [
        f"{RDS_INSTANCE}-222222222222-20260101000000"
    ]


def test_the_distribution_is_found_by_its_alias_as_the_deployer(dev, tmp_path):
    prepare_flow("lookup", dev)
    with enforcing(dev["endpoint"]):
        result = publish_by_alias(dev, tmp_path)
    assert result.rc == 0, result
    published = json.loads((tmp_path / "result.json").read_text())
    assert invalidations(dev["endpoint"], dev["resources"]["distribution_id"]) == [
        sorted(published["invalidation"]["paths"])
    ]


def test_the_target_group_moves_as_the_deployer(dev):
    with enforcing(dev["endpoint"]):
        result = move_target(dev)
    assert result.rc == 0, result
    assert "failed=0" in result.output


def test_the_inventory_reads_the_instances_as_the_inventory_source(dev, tmp_path):
    with enforcing(dev["endpoint"]):
        proc = run_inventory(dev["endpoint"], tmp_path, dev["as"].inventory)
    assert proc.returncode == 0, proc.stderr
    found = plain(json.loads(proc.stdout))
    assert found["flora_backend"]["hosts"] == [dev["resources"]["instance_id"]]


# ---------------------------------------------------------------------------
# Every statement is needed


@dataclass(frozen=True)
class Fix:
    """What this collection's modules say when AWS refuses them: the identity (an attribute of DevIdentities) may
    not do the action, and the statement of the policy to add."""

    identity: str
    action: str
    policy: str

    def fragments(self, dev: dict, sid: str) -> list[str]:
        arn = getattr(dev["as"], self.identity).arn
        return [
            f"{arn} may not {self.action} on ",
            f"add the statement {sid} (flora.deploy.iam_policies, the {self.policy} policy) to its policy",
        ]


def denied(action: str) -> list[str]:
    """AWS's own words, where the module that fails is not this collection's."""
    return [f"is not authorized to perform: {action}"]


# Policy, statement, the flow that needs it, and what the failure says. community.aws.elb_target drops AWS's error
# when a deregistration fails, and amazon.aws.rds_instance_snapshot when it may not look for the snapshot first.
STATEMENTS = [
    (
        INSTANCE_POLICY,
        "ReadEnvironmentParameters",
        "backend_env",
        Fix("instance", "ssm:GetParametersByPath", "backend-instance"),
    ),
    (DEPLOYER_POLICY, "ListFrontendBucket", "publish", Fix("deployer", "s3:ListBucket", "deployer")),
    (DEPLOYER_POLICY, "ReadFrontendObjects", "publish", Fix("deployer", "s3:GetObject", "deployer")),
    (DEPLOYER_POLICY, "WriteFrontendObjects", "publish", Fix("deployer", "s3:PutObject", "deployer")),
    (DEPLOYER_POLICY, "DeleteOldFrontendBuilds", "publish_two_builds", Fix("deployer", "s3:DeleteObject", "deployer")),
    (DEPLOYER_POLICY, "ReadDistribution", "publish", Fix("deployer", "cloudfront:GetDistribution", "deployer")),
    (DEPLOYER_POLICY, "CreateInvalidations", "publish", Fix("deployer", "cloudfront:CreateInvalidation", "deployer")),
    (DEPLOYER_POLICY, "ReadFrontendBuildParameters", "build_env", Fix("deployer", "ssm:GetParameters", "deployer")),
    (DEPLOYER_POLICY, "DescribeInstances", "deployer_inventory", denied("ec2:DescribeInstances")),
    (DEPLOYER_POLICY, "DescribeTargetGroups", "target_group", denied("elasticloadbalancing:DescribeTargetGroups")),
    (DEPLOYER_POLICY, "MoveTargets", "target_group", ["Unable to deregister target"]),
    (INVENTORY_POLICY, "DescribeInstances", "inventory", denied("ec2:DescribeInstances")),
    (INSTANCE_POLICY, "WriteDatabaseBackups", "backup", denied("s3:PutObject")),
    (DEPLOYER_POLICY, "SnapshotDatabase", "snapshot", ["Failed to describe db snapshots"]),
    (DEPLOYER_POLICY, "FindDistribution", "lookup", Fix("deployer", "cloudfront:ListDistributions", "deployer")),
]


def prepare_flow(flow: str, dev: dict) -> None:
    """What a backup flow needs besides the dev fixture's: the backup bucket; for the RDS snapshot, the instance and
    the policies for that backup (iam_policies_backup=rds_snapshot)."""
    if flow == "backup":
        s3 = localaws.boto3_client("s3", dev["endpoint"])
        s3.create_bucket(Bucket=BACKUP_BUCKET, CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
    if flow == "lookup":
        create_policies(dev["run"], dev["resources"], iam_policies_distribution_lookup=True)
    if flow == "snapshot":
        create_policies(
            dev["run"],
            dev["resources"],
            iam_policies_backup="rds_snapshot",
            iam_policies_backup_rds_instance=RDS_INSTANCE,
        )
        localaws.create_database_instance(dev["endpoint"], RDS_INSTANCE)


def run_flow(flow: str, dev: dict, tmp_path: Path, request) -> tuple[bool, str]:
    """The flow as its identity: whether it succeeded, and its output."""
    if flow == "backend_env":
        result = render_backend_env(dev, dev["as"].instance)
    elif flow == "publish":
        result = publish_sample(dev, tmp_path)
    elif flow == "publish_two_builds":
        result = publish_two_builds(dev, tmp_path)
    elif flow == "build_env":
        result = publish_with_build_env(dev, tmp_path)
    elif flow == "target_group":
        result = move_target(dev)
    elif flow == "backup":
        result = take_backup(dev, tmp_path, request.getfixturevalue("database"))
    elif flow == "snapshot":
        result = take_snapshot(dev)
    elif flow == "lookup":
        result = publish_by_alias(dev, tmp_path)
    else:
        identity = dev["as"].deployer if flow == "deployer_inventory" else dev["as"].inventory
        proc = run_inventory(dev["endpoint"], tmp_path, identity)
        return proc.returncode == 0, proc.stdout + proc.stderr
    return result.rc == 0, result.output


@pytest.mark.parametrize(
    ("policy", "sid", "flow", "failure"), STATEMENTS, ids=[f"{case[0]}-{case[1]}" for case in STATEMENTS]
)
def test_without_a_statement_the_flow_that_needs_it_fails(dev, tmp_path, request, policy, sid, flow, failure):
    prepare_flow(flow, dev)
    identities.without_statement(dev["endpoint"], policy, sid)
    with enforcing(dev["endpoint"]):
        succeeded, output = run_flow(flow, dev, tmp_path, request)
    assert not succeeded, output
    for fragment in failure.fragments(dev, sid) if isinstance(failure, Fix) else failure:
        assert fragment in one_line(output), output
