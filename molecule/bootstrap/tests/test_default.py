"""What a bootstrapped Flora backend host must look like (run by molecule's testinfra verifier)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jsonschema

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.support.localaws import expected_backend_env

# The CloudWatch agent's published config schema (MIT licence beside it), copied into the repository.
SCHEMA = REPO / "tests" / "fixtures" / "cloudwatch-agent-schema" / "schema.json"
ROOT = "/home/ubuntu/Flora"


def test_pinned_versions(host):
    assert host.check_output("node --version") == "v24.21.0"
    assert host.check_output("pnpm --version") == "10.34.9"
    pm2 = json.loads(host.file("/usr/local/lib/node_modules/pm2/package.json").content_string)
    assert pm2["version"] == "6.0.14"


def test_pm2_unit_enabled_and_running(host):
    service = host.service("pm2-ubuntu")
    assert service.is_enabled
    assert service.is_running
    unit = host.file("/etc/systemd/system/pm2-ubuntu.service").content_string
    assert "User=ubuntu" in unit
    assert "Environment=PM2_HOME=/home/ubuntu/.pm2" in unit


def test_app_answers_on_3001(host):
    assert host.socket("tcp://0.0.0.0:3001").is_listening
    health = json.loads(host.check_output("curl -sf http://127.0.0.1:3001/api/health"))
    assert health["status"] == "healthy"
    webhook = host.check_output(
        "curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' http://127.0.0.1:3001/api/webhooks/stripe"
    )
    assert webhook == "400"


def test_database_migrated_through_the_composed_url(host):
    # DATABASE_URL carries the URL-encoded password 'p@ss/w:rd%20#1 $HOME': a wrong encoding cannot log in.
    # The first bootstrap on an empty database migrated it and, as asked (ec2_bootstrap_seed), seeded it.
    products = json.loads(host.check_output("curl -sf http://127.0.0.1:3001/api/products"))
    assert [product["name"] for product in products] == ["Roses", "Tulips"]


def test_env_file_is_private_and_exact(host):
    env_file = host.file(f"{ROOT}/shared/backend.env")
    assert env_file.mode == 0o600
    assert env_file.user == "ubuntu"
    assert env_file.group == "ubuntu"
    # Read as the app reads it: with the dotenv the release installed, from the release's backend directory.
    parsed = json.loads(
        host.check_output(
            f"cd {ROOT}/current/apps/backend && node -e "
            '\'const fs = require("fs"); '
            'console.log(JSON.stringify(require("dotenv").parse(fs.readFileSync(".env"))))\''
        )
    )
    expected = expected_backend_env("https://flora.example", f"127.0.0.1:{os.environ['FLORA_TEST_PG_PORT']}")
    assert dict(parsed) == expected


def test_release_layout(host):
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    assert current.linked_to.startswith(f"{ROOT}/releases/")
    assert host.file(f"{current.linked_to}/apps/backend/dist/index.js").exists
    assert host.file(f"{current.linked_to}/apps/backend/.env").linked_to == f"{ROOT}/shared/backend.env"
    assert host.file(f"{ROOT}/shared/ecosystem.config.js").exists


def test_cloudwatch_config_validates_and_was_applied_once(host):
    config = json.loads(host.file("/etc/flora/amazon-cloudwatch-agent.json").content_string)
    jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(config)
    files = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert {entry["file_path"] for entry in files} >= {
        "/home/ubuntu/.pm2/logs/flora-backend-out.log",
        "/home/ubuntu/.pm2/logs/flora-backend-error.log",
    }
    assert {entry["log_group_name"] for entry in files} == {"/aws/ec2/flora-backend"}
    calls = host.file("/opt/aws/amazon-cloudwatch-agent/var/ctl-calls.log").content_string.splitlines()
    assert len(calls) == 1
    assert calls[0].endswith(
        "-a fetch-config -m ec2 -c file:/opt/aws/amazon-cloudwatch-agent/etc/flora-fetch-config.json -s"
    )


def test_agent_user_can_read_the_app_logs(host):
    out_log = "/home/ubuntu/.pm2/logs/flora-backend-out.log"
    assert host.run(f"runuser -u cwagent -- test -r {out_log}").rc == 0
    assert host.run("runuser -u cwagent -- test -r /home/ubuntu/Flora/shared/backend.env").rc != 0
