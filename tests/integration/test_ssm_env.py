"""flora.deploy.ssm_env through ansible-playbook against the moto server."""

from __future__ import annotations

import os
import stat

from tests.integration.test_dotenv_roundtrip import read_with_npm_dotenv
from tests.support import localaws

SITE = "https://flora.example"


def expected_flora_env() -> dict:
    """The Flora backend .env, as shared/reference/flora-app.md describes it, for the seeded values."""
    strings = localaws.FLORA_STRING_PARAMETERS
    secrets = localaws.FLORA_SECURE_PARAMETERS
    env = {name.upper(): value for name, value in {**strings, **secrets}.items()}
    del env["DB_USERNAME"], env["DB_PASSWORD"]
    env.update(
        {
            # db_password is 'p@ss/w:rd%20#1 $HOME': every reserved character encoded.
            "DATABASE_URL": "postgresql://flora_app:p%40ss%2Fw%3Ard%2520%231%20%24HOME@flora-db.internal:5432/flora_db",
            "SMTP_USER": strings["gmail_user"],
            "FROM_EMAIL": strings["gmail_user"],
            "CONTACT_EMAIL": strings["gmail_user"],
            "SMTP_PASS": secrets["gmail_password"],
            "NODE_ENV": "production",
            "PORT": "3001",
            "SMTP_HOST": "smtp.gmail.com",
            "SMTP_PORT": "587",
            "SMTP_SECURE": "false",
            "FROM_NAME": "Flora Marketplace",
            "EMAIL_INLINE_ITEM_IMAGES": "false",
            "FRONTEND_URL": SITE,
            "BACKEND_PUBLIC_URL": SITE,
            "EMAIL_IMAGE_BASE_URL": SITE,
            "EMAIL_LOGO_URL": SITE + "/flora-logo.png",
        }
    )
    return env


def test_flora_env_file_check_mode_change_and_idempotence(aws, run_playbook, tmp_path):
    localaws.seed_flora_parameters(aws)
    result = run_playbook("ssm_env/flora_env.yml")
    assert result.rc == 0, result
    assert "changed=" in result.output
    env_file = tmp_path / "backend.env"
    expected = expected_flora_env()
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
