"""playbooks/bootstrap_ec2.yml on a systemd test host: converge, idempotence, verification, reboot, bad input."""

from __future__ import annotations

import re
import subprocess
import time

from tests.hosts.conftest import HOST, live_release, molecule, wait_for_health
from tests.support import localaws, stack
from tests.support.stack import playbook_run

SCENARIO = "bootstrap"


def host_exec(*cmd: str) -> str:
    return stack.host_exec(HOST, *cmd)


def unit_state() -> str:
    return host_exec("sh", "-c", "systemctl is-active pm2-ubuntu || true")


def test_fresh_host_with_an_unknown_ref_fails_before_anything_starts(host_services):
    assert molecule(host_services, SCENARIO, "destroy").returncode == 0
    assert molecule(host_services, SCENARIO, "create").returncode == 0
    result = molecule(host_services, SCENARIO, "converge", "-e", "ec2_bootstrap_ref=no-such-ref")
    assert result.returncode != 0
    # The error line names the ref (where it goes depends on whether molecule has a terminal).
    assert "Unknown git ref 'no-such-ref' in git://" in result.stdout + result.stderr
    assert host_exec("sh", "-c", "test -e /home/ubuntu/Flora/current && echo live || echo none") == "none"
    assert host_exec("sh", "-c", "systemctl is-active pm2-ubuntu || true") != "active"


def test_bootstrap_converges_idempotently_and_verifies(host_services):
    """`molecule test -s bootstrap`, the command `make molecule SCENARIO=bootstrap` runs, on a host created afresh
    (create, converge, idempotence, verify), except that the host stays for the tests after this one (--destroy
    never, which skips every destroy of the sequence, the first one too: hence the destroy before it)."""
    assert molecule(host_services, SCENARIO, "destroy").returncode == 0
    run = molecule(host_services, SCENARIO, "test", options=["--destroy", "never"])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    actions = re.findall(r"^INFO +\[bootstrap > (\w+)\] Executing$", run.stdout + run.stderr, re.MULTILINE)
    assert actions == ["destroy", "create", "converge", "idempotence", "verify", "destroy"], actions
    # Each destroy is announced, then skipped.
    assert (run.stdout + run.stderr).count("Skipping, '--destroy=never' requested.") == 2
    assert live_release() == f"/home/ubuntu/Flora/releases/{host_services['commits']['main']}"
    # The host tests that need a bootstrapped host skip their no-op converge while this release stays live.
    host_services["idempotent_release"] = live_release()


def test_app_comes_back_after_a_reboot_without_ansible(bootstrapped_host):
    before = host_exec("readlink", "/home/ubuntu/Flora/current")
    subprocess.run(["podman", "restart", "--time", "30", HOST], env=stack.podman_env(), check=True, capture_output=True)
    assert wait_for_health() == 200
    # The unit is "activating" until pm2 start returns, which can be after the first worker answers.
    deadline = time.monotonic() + 60
    while unit_state() != "active" and time.monotonic() < deadline:
        time.sleep(1)
    assert unit_state() == "active"
    assert host_exec("readlink", "/home/ubuntu/Flora/current") == before


def test_missing_ssm_parameter_fails_naming_it_and_leaves_the_app_alone(bootstrapped_host):
    ssm = localaws.boto3_client("ssm", bootstrapped_host["endpoint"])
    name = "/flora/prod/stripe_webhook_secret"
    secret = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    env_before = host_exec("sha256sum", "/home/ubuntu/Flora/shared/backend.env")
    ssm.delete_parameter(Name=name)
    try:
        result = molecule(bootstrapped_host, SCENARIO, "converge")
    finally:
        ssm.put_parameter(Name=name, Value=secret, Type="SecureString", Overwrite=True)
    assert result.returncode != 0
    assert "required keys are missing: STRIPE_WEBHOOK_SECRET" in result.stdout
    assert secret not in result.stdout
    assert host_exec("sha256sum", "/home/ubuntu/Flora/shared/backend.env") == env_before
    assert wait_for_health(timeout=5) == 200


def test_a_parameter_the_backend_never_reads_is_not_required(bootstrapped_host):
    """jwt_secret is written when present, but nothing in the running backend reads JWT_SECRET."""
    ssm = localaws.boto3_client("ssm", bootstrapped_host["endpoint"])
    name = "/flora/prod/jwt_secret"
    secret = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.delete_parameter(Name=name)
    try:
        result = molecule(bootstrapped_host, SCENARIO, "converge")
        env_without = host_exec("cat", "/home/ubuntu/Flora/shared/backend.env")
    finally:
        ssm.put_parameter(Name=name, Value=secret, Type="SecureString", Overwrite=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "JWT_SECRET=" not in env_without and "STRIPE_WEBHOOK_SECRET=" in env_without
    # Back with the parameter: the next run writes it again (a redeploy of the live commit, which reloads for it).
    live = live_release().rsplit("/", 1)[-1]
    again = playbook_run(bootstrapped_host, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={live}")
    assert again.rc == 0, again
    assert again.result("Say what this run does")["msg"] == (
        f"reload {live[:12]} with the new env file; the env file changed"
    )
    assert "JWT_SECRET=" in host_exec("cat", "/home/ubuntu/Flora/shared/backend.env")


def test_unsupported_os_fails_first(bootstrapped_host):
    result = molecule(
        bootstrapped_host,
        SCENARIO,
        "converge",
        "-e",
        '{"ec2_bootstrap_supported_os": {"Debian": ["11"], "Ubuntu": ["24"]}}',
    )
    assert result.returncode != 0
    assert "Unsupported operating system Debian 12" in result.stdout
    assert "TASK [flora.deploy.nodejs" not in result.stdout
