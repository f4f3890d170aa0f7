"""flora.deploy.ssm_env through ansible-playbook against the moto server, as the identities that read the
parameters in production, with the emulator authorizing every request: the backend's instance role of the
environment reads its path (the env file is rendered on the host); the deployer reads the frontend build's
parameters by name. An administrator rotates a secret between renders."""

from __future__ import annotations

import json
import os
import stat

from tests.integration.test_dotenv_roundtrip import read_with_npm_dotenv
from tests.integration.test_frontend_publish import changed_count
from tests.support import identities, localaws


def as_administrator(endpoint: str) -> dict:
    """An administrator's credentials as a task's module options (which no output shows), for the task that stands
    for one in a run as another identity: rotating a secret."""
    administrator = identities.administrator(endpoint)
    return {
        "access_key": administrator.access_key_id,
        "secret_key": administrator.secret_access_key,
        "session_token": administrator.session_token,
    }


def reading_as(identity: identities.Identity) -> dict:
    """The AWS_* variables of ``identity``, for a task that reads as it in a run as another."""
    return {"AWS_SESSION_TOKEN": "", **identity.environment()}


def test_flora_env_file_check_mode_change_and_idempotence(aws, run_playbook, tmp_path):
    localaws.seed_flora_parameters(aws)
    result = run_playbook("ssm_env/flora_env.yml", {"rotate_as": as_administrator(aws)}, identity="instance")
    assert result.rc == 0, result
    # The play's assert tasks check each step; they all ran: the check run, the first render, the rotation and the
    # render after it changed something, the second render did not.
    assert changed_count(result.output) == 4, result
    env_file = tmp_path / "backend.env"
    expected = localaws.expected_backend_env("https://flora.example", "flora-db.internal:5432")
    expected["GMAIL_PASSWORD"] = expected["SMTP_PASS"] = "rotated app password"
    assert read_with_npm_dotenv(env_file) == expected
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.stat().st_uid == os.getuid()
    lines = env_file.read_text().splitlines()
    assert lines == sorted(lines)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_input_fails_clearly_and_writes_nothing(aws, run_playbook):
    localaws.seed_flora_parameters(aws)
    ssm = localaws.boto3_client("ssm", aws)
    for name in ("/flora/bad/stripe-key", "/flora/bad/a/token", "/flora/bad/b/token"):
        ssm.put_parameter(Name=name, Value="x", Type="String")
    # Each case as its reader: prod's instance role; the instance role of the environment whose path is unknown or
    # holds the bad names; the deployer for the named parameters, one of which (a frontend build parameter the
    # policy names) was never created.
    frontend_parameters = ["auth0_domain", "auth0_client_id", "auth0_audience", "stripe_publishable_key", "nope"]
    prod = identities.production_identities(aws, "prod", frontend_parameters=frontend_parameters)
    read_as = {
        "unknown_path": reading_as(identities.production_identities(aws, "nowhere").instance),
        "unknown_name": reading_as(prod.deployer),
        "bad_keys": reading_as(identities.production_identities(aws, "bad").instance),
    }
    result = run_playbook("ssm_env/errors.yml", {"read_as": read_as}, identity=prod.instance)
    assert result.rc == 0, result
    assert "failed=0" in result.output


def test_no_secret_value_appears_at_vvv_with_diff(aws, run_playbook):
    seeded = localaws.seed_flora_parameters(aws)
    rotated = "sk_live_rotated_7d2f9c"
    variables = {"rotated_secret": rotated, "rotate_as": as_administrator(aws)}
    result = run_playbook("ssm_env/secrets.yml", variables, "-vvv", "--diff", identity="instance")
    assert result.rc == 0, result
    assert "STRIPE_SECRET_KEY=<masked> (changed)" in result.output
    secret_names = {f"{localaws.FLORA_PREFIX}/{name}" for name in localaws.FLORA_SECURE_PARAMETERS}
    secrets = localaws.secret_forms([value for name, value in seeded.items() if name in secret_names] + [rotated])
    assert [secret for secret in secrets if secret in result.output] == []


def test_no_source_or_a_value_the_reader_cannot_carry_fails_and_keeps_the_file(aws, run_playbook, tmp_path):
    ssm = localaws.boto3_client("ssm", aws)
    expanded, uncarried = "pa${HOME}ss w0rd", 'it\'s "quoted" `and` # multiline\nyes'
    ssm.put_parameter(Name="/flora/tricky/db_password", Value=expanded, Type="SecureString")
    ssm.put_parameter(Name="/flora/tricky/uncarried", Value=uncarried, Type="SecureString")

    # The parameters are those of the environment "tricky": its instance role reads them.
    tricky = identities.production_identities(aws, "tricky").instance
    result = run_playbook("ssm_env/sources_and_readers.yml", None, "-vvv", "--diff", identity=tricky)

    assert result.rc == 0, result
    assert read_with_npm_dotenv(tmp_path / "backend.env") == {"DB_PASSWORD": expanded}
    for secret in (expanded, uncarried, json.dumps(uncarried)[1:-1]):
        assert secret not in result.output


def test_app_env_with_nothing_to_read_fails_and_keeps_the_file(aws, run_playbook):
    localaws.seed_flora_parameters(aws)
    result = run_playbook("ssm_env/app_env_nothing_to_read.yml", identity="instance")
    assert result.rc == 0, result
    assert "The role failed naming the problem, and the file is as it was" in result.output


def test_app_env_without_a_required_setting_fails_naming_it_and_keeps_the_file(aws, run_playbook):
    localaws.seed_flora_parameters(aws)
    result = run_playbook("ssm_env/app_env_required.yml", identity="instance")
    assert result.rc == 0, result
    assert "Each run failed naming the missing setting, and the file is as it was" in result.output
