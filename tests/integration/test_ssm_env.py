"""flora.deploy.ssm_env through ansible-playbook against the moto server."""

from __future__ import annotations

import json
import os
import stat

from tests.integration.test_dotenv_roundtrip import read_with_npm_dotenv
from tests.support import localaws


def test_flora_env_file_check_mode_change_and_idempotence(aws, run_playbook, tmp_path):
    localaws.seed_flora_parameters(aws)
    result = run_playbook("ssm_env/flora_env.yml")
    assert result.rc == 0, result
    assert "changed=" in result.output
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
    result = run_playbook("ssm_env/errors.yml")
    assert result.rc == 0, result
    assert "failed=0" in result.output


def test_no_secret_value_appears_at_vvv_with_diff(aws, run_playbook):
    seeded = localaws.seed_flora_parameters(aws)
    rotated = "sk_live_rotated_7d2f9c"
    result = run_playbook("ssm_env/secrets.yml", {"rotated_secret": rotated}, "-vvv", "--diff")
    assert result.rc == 0, result
    assert "STRIPE_SECRET_KEY=<masked> (changed)" in result.output
    secret_names = {f"{localaws.FLORA_PREFIX}/{name}" for name in localaws.FLORA_SECURE_PARAMETERS}
    secrets = [value for name, value in seeded.items() if name in secret_names] + [rotated]
    for secret in secrets:
        assert secret not in result.output
    # The URL-encoded password is a secret too.
    assert "p%40ss" not in result.output


def test_no_source_or_a_value_the_reader_cannot_carry_fails_and_keeps_the_file(aws, run_playbook, tmp_path):
    ssm = localaws.boto3_client("ssm", aws)
    expanded, uncarried = "pa${HOME}ss w0rd", 'it\'s "quoted" `and` # multiline\nyes'
    ssm.put_parameter(Name="/flora/tricky/db_password", Value=expanded, Type="SecureString")
    ssm.put_parameter(Name="/flora/tricky/uncarried", Value=uncarried, Type="SecureString")

    result = run_playbook("ssm_env/sources_and_readers.yml", None, "-vvv", "--diff")

    assert result.rc == 0, result
    assert read_with_npm_dotenv(tmp_path / "backend.env") == {"DB_PASSWORD": expanded}
    for secret in (expanded, uncarried, json.dumps(uncarried)[1:-1]):
        assert secret not in result.output


def test_app_env_with_nothing_to_read_fails_and_keeps_the_file(aws, run_playbook):
    localaws.seed_flora_parameters(aws)
    result = run_playbook("ssm_env/app_env_nothing_to_read.yml")
    assert result.rc == 0, result
    assert "The role failed naming the problem, and the file is as it was" in result.output


def test_app_env_without_a_required_setting_fails_naming_it_and_keeps_the_file(aws, run_playbook):
    localaws.seed_flora_parameters(aws)
    result = run_playbook("ssm_env/app_env_required.yml")
    assert result.rc == 0, result
    assert "Each run failed naming the missing setting, and the file is as it was" in result.output
