"""flora.deploy.redeploy_preflight through ansible-playbook: a real git repository, the moto server for Parameter
Store, the ledger and the lock in a temporary app directory. The preflight runs on the backend host, so every run
reads the parameters as the environment's instance role, with the emulator authorizing each request."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_dotenv_roundtrip import read_with_npm_dotenv
from tests.support import hostside, localaws

PREFLIGHT = "redeploy_preflight/preflight.yml"


@pytest.fixture
def app(aws, tmp_path: Path) -> dict:
    """An origin repository with a main branch and a v1 tag, and a deployed app directory whose current link
    points at main's commit."""
    localaws.seed_flora_parameters(aws)
    origin = tmp_path / "origin"
    origin.mkdir()
    hostside.git(origin, "init", "-q", "-b", "main")
    (origin / "index.js").write_text("console.log('v1')\n")
    hostside.git(origin, "add", "index.js")
    hostside.git(origin, "commit", "-q", "-m", "v1")
    hostside.git(origin, "tag", "v1")
    head = hostside.git(origin, "rev-parse", "HEAD").strip()
    root = tmp_path / "Flora"
    (root / "releases" / head).mkdir(parents=True)
    (root / "shared").mkdir()
    (root / "current").symlink_to(root / "releases" / head)
    return {"root": root, "origin": origin, "head": head}


@pytest.fixture
def preflight(run_playbook, tmp_path, app):
    def run(*args: str, extra: dict | None = None, **preflight_args) -> dict:
        root = app["root"]
        arguments = {
            "ledger": str(root / "releases.json"),
            "current_link": str(root / "current"),
            "lock": str(root / ".deploy.lock"),
            "lock_owner": "test:1:1",
            "repo": str(root / "repo.git"),
            "repo_url": str(app["origin"]),
            "ref": "main",
        }
        arguments.update(preflight_args)
        variables = {"preflight_args": {k: v for k, v in arguments.items() if v is not None}}
        variables.update(extra or {})
        result = run_playbook(PREFLIGHT, variables, *args, identity="instance")
        assert result.rc == 0, result
        outcome = json.loads((tmp_path / "result.json").read_text())
        outcome["output"] = result.output
        return outcome

    return run


def lock_owner(root: Path) -> str | None:
    owner = root / ".deploy.lock" / "owner"
    return owner.read_text().strip() if owner.exists() else None


def record_live(root: Path, commit: str) -> None:
    ledger = {"version": 1, "current": commit, "releases": [{"commit": commit, "status": "live", "ref": "main"}]}
    (root / "releases.json").write_text(json.dumps(ledger))


def test_check_mode_then_lock_fetch_and_env_then_nothing_to_do(preflight, app):
    root, env_file = app["root"], app["root"] / "shared" / "backend.env"

    checked = preflight("--check", "--diff", release_lock_if_unchanged=True)
    assert checked["changed"] and checked["env"]["changed"]
    # Resolved from what the origin advertises: a real run would clone the cache, the check run wrote nothing.
    assert checked["commit"] == app["head"] and checked["cloned"]
    assert not (root / "repo.git").exists()
    assert "STRIPE_SECRET_KEY=<masked>" in checked["output"]
    assert not env_file.exists()
    assert lock_owner(root) is None

    first = preflight(release_lock_if_unchanged=True)
    assert first["changed"] and first["env"]["changed"] and first["env"]["count"] == 31
    assert first["lock_holder"] == "" and lock_owner(root) == "test:1:1"
    # The owner it took the lock for, which the tasks after it name to release the lock.
    assert first["lock_owner"] == "test:1:1"
    assert first["linked"] == first["commit"] == app["head"]
    # The ledger does not record the commit yet: a switch that was never confirmed is not "nothing to do".
    assert first["current"] is None and not first["unchanged"] and not first["lock_released"]
    assert read_with_npm_dotenv(env_file)["STRIPE_SECRET_KEY"] == localaws.FLORA_SECURE_PARAMETERS["stripe_secret_key"]
    assert "STRIPE_SECRET_KEY" in first["env"]["keys"]

    (root / ".deploy.lock" / "owner").unlink()
    (root / ".deploy.lock").rmdir()
    record_live(root, app["head"])
    second = preflight(release_lock_if_unchanged=True)
    assert not second["changed"] and not second["env"]["changed"] and not second["cloned"]
    assert second["unchanged"] and second["lock_released"]
    assert lock_owner(root) is None


def test_an_env_file_the_app_was_not_reloaded_with_is_not_nothing_to_do(preflight, app):
    root = app["root"]
    record_live(root, app["head"])
    first = preflight()
    assert first["env_live"] and first["env"]["changed"]
    (root / ".deploy.lock" / "owner").unlink()
    (root / ".deploy.lock").rmdir()
    # The run that rendered the file died before the reload: the ledger still has the checksum of the last reload.
    ledger = json.loads((root / "releases.json").read_text())
    ledger["env_checksum"] = "0" * 64
    (root / "releases.json").write_text(json.dumps(ledger))

    stale = preflight(release_lock_if_unchanged=True)
    assert not stale["env"]["changed"] and not stale["env_live"]
    assert not stale["unchanged"] and not stale["lock_released"]
    (root / ".deploy.lock" / "owner").unlink()
    (root / ".deploy.lock").rmdir()

    ledger["env_checksum"] = stale["env"]["checksum"]
    (root / "releases.json").write_text(json.dumps(ledger))
    reloaded = preflight(release_lock_if_unchanged=True)
    assert reloaded["env_live"] and reloaded["unchanged"] and reloaded["lock_released"]


def test_new_commit_is_fetched_and_resolved(preflight, app):
    record_live(app["root"], app["head"])
    preflight(release_lock_if_unchanged=True)
    (app["origin"] / "index.js").write_text("console.log('v2')\n")
    hostside.git(app["origin"], "commit", "-q", "-am", "v2")
    new = hostside.git(app["origin"], "rev-parse", "HEAD").strip()
    (app["root"] / ".deploy.lock" / "owner").unlink()
    (app["root"] / ".deploy.lock").rmdir()

    result = preflight(release_lock_if_unchanged=True)
    assert result["commit"] == new and not result["cloned"]
    assert not result["unchanged"] and not result["lock_released"]
    assert lock_owner(app["root"]) == "test:1:1"
    tagged = preflight(ref="v1", lock_owner="test:1:1", lock_takeover_from="test:1:1")
    assert tagged["commit"] == app["head"]


def test_lock_held_by_another_run(preflight, app):
    lock = app["root"] / ".deploy.lock"
    lock.mkdir()
    (lock / "owner").write_text("other:2:2\n")
    result = preflight(release_lock_if_unchanged=True)
    assert result["lock_holder"] == "other:2:2"
    assert result["lock_owner"] == "test:1:1"
    assert "commit" not in result and "env" not in result
    assert not (app["root"] / "repo.git").exists()
    assert not (app["root"] / "shared" / "backend.env").exists()
    assert lock_owner(app["root"]) == "other:2:2"


@pytest.mark.parametrize(
    ("arguments", "extra", "message"),
    [
        ({"ref": "no-such-branch"}, {}, "Unknown git ref 'no-such-branch' in "),
        ({"repo_url": "/nonexistent/flora.git"}, {}, "Cannot clone /nonexistent/flora.git into "),
        ({}, {"required_keys": ["NOT_IN_PARAMETER_STORE"]}, "NOT_IN_PARAMETER_STORE"),
    ],
)
def test_a_failure_names_the_problem_and_leaves_no_lock(preflight, app, arguments, extra, message):
    result = preflight(extra=extra, **arguments)
    assert result["failed"] and message in result["msg"], result["msg"]
    assert result["lock_released"]
    assert lock_owner(app["root"]) is None
    assert not (app["root"] / "shared" / "backend.env").exists()


def test_a_failed_fetch_leaves_the_env_file_as_it_was(preflight, app, aws):
    """The fetch runs while Parameter Store is read; the env file is written only once the ref is resolved."""
    first = preflight()
    env_file = app["root"] / "shared" / "backend.env"
    before = env_file.read_text()
    (app["root"] / ".deploy.lock" / "owner").unlink()
    (app["root"] / ".deploy.lock").rmdir()
    localaws.boto3_client("ssm", aws).put_parameter(
        Name=f"{localaws.FLORA_PREFIX}/stripe_secret_key", Value="sk_test_rotated", Type="SecureString", Overwrite=True
    )
    moved = app["origin"].with_name("moved")
    app["origin"].rename(moved)

    result = preflight()
    assert not first.get("failed") and result["failed"]
    assert result["msg"].startswith(f"Cannot fetch {app['origin']} into {app['root'] / 'repo.git'}: fatal: ")
    assert "does not appear to be a git repository" in result["msg"]
    assert result["lock_released"] and lock_owner(app["root"]) is None
    assert env_file.read_text() == before


@pytest.fixture
def silent_git_server():
    """(a git:// URL whose server accepts connections and never answers, so that a fetch from it waits forever; the
    connections it accepted)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept():
        while True:
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield f"git://127.0.0.1:{listener.getsockname()[1]}/flora.git", accepted
    listener.close()
    for connection in accepted:
        connection.close()


def processes_with(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv:
            found.append(argv)
    return found


def test_a_parameter_store_failure_stops_a_fetch_still_running(preflight, app, silent_git_server):
    preflight()
    (app["root"] / ".deploy.lock" / "owner").unlink()
    (app["root"] / ".deploy.lock").rmdir()

    url, accepted = silent_git_server
    result = preflight(repo_url=url, extra={"required_keys": ["NOT_IN_PARAMETER_STORE"]})
    assert result["failed"] and "NOT_IN_PARAMETER_STORE" in result["msg"], result["msg"]
    assert result["lock_released"] and lock_owner(app["root"]) is None
    # The fetch had started (it reached the silent server); the task did not wait for it, and no git process was
    # left behind fetching from there.
    deadline = time.monotonic() + 10
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert accepted
    assert processes_with(url) == []


def test_a_host_never_deployed_stops_after_reading(preflight, app):
    (app["root"] / "current").unlink()
    result = preflight()
    assert result["linked"] == "" and "commit" not in result
    assert not (app["root"] / "repo.git").exists()
    # Nothing to deploy onto: the call that took the lock released it.
    assert result["lock_released"] and lock_owner(app["root"]) is None


def test_without_ref_and_env_only_locks_and_reads(preflight, app):
    record_live(app["root"], app["head"])
    result = preflight(ref=None, repo=None, repo_url=None, extra={"with_env": False})
    assert result["current"] == app["head"] and result["linked"] == app["head"]
    assert not result["changed"] and not result["unchanged"]
    assert "commit" not in result and "env" not in result
    assert lock_owner(app["root"]) == "test:1:1"


def test_short_env_values_do_not_mask_the_commit_or_the_lock_holder(preflight, app):
    # A literal such as PORT=3001 must not turn a commit or lock owner that contains it into "...********...".
    piece = app["head"][10:14]
    owner = f"laptop:{piece}:1"
    literals = {"NODE_ENV": "production", "PORT": piece}
    result = preflight(lock_owner=owner, extra={"literals": literals})
    assert result["commit"] == app["head"]
    assert result["linked"] == app["head"]
    assert lock_owner(app["root"]) == owner
    (app["root"] / ".deploy.lock" / "owner").unlink()
    (app["root"] / ".deploy.lock").rmdir()
    other = app["root"] / ".deploy.lock"
    other.mkdir()
    (other / "owner").write_text(owner + "\n")
    held = preflight(lock_owner="test:1:1", extra={"literals": literals})
    assert held["lock_holder"] == owner


def test_no_secret_value_appears_at_vvv_with_diff(preflight, app):
    result = preflight("-vvv", "--diff")
    assert "STRIPE_SECRET_KEY=<masked>" in result["output"]
    secrets = localaws.secret_forms(localaws.FLORA_SECURE_PARAMETERS.values())
    assert [secret for secret in secrets if secret in result["output"]] == []


def test_an_env_with_nothing_to_read_fails_before_the_lock_and_keeps_the_file(preflight, app):
    env_file = app["root"] / "shared" / "backend.env"
    env_file.write_text("KEEP='live'\n")

    result = preflight(extra={"app_env_ssm_path": ""})

    assert result["failed"]
    assert result["msg"] == (
        f"env: Nothing to read for {env_file}: paths and names are both empty, so every secret would be missing. "
        "The file was left as it was."
    )
    assert env_file.read_text() == "KEEP='live'\n"
    assert lock_owner(app["root"]) is None and not (app["root"] / "repo.git").exists()
