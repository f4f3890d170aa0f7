"""flora.deploy.fast_exit in a real ansible-playbook run with the checkout's ansible.cfg.

The run goes through ansible-playbook's own entry point, under a wrapper whose exit handler runs last (it is
registered first) and reports what the collector had set aside by then: the state the interpreter's final
collection meets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import CONTROLLER_PLAY, REPO, playbook_environment

WRAPPER = """
import atexit, gc, os, sys
atexit.register(lambda: os.write(2, b"frozen at exit: %d\\n" % gc.get_freeze_count()))
from ansible.cli.playbook import main
sys.argv[0] = "ansible-playbook"
main()
"""


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps(CONTROLLER_PLAY))
    full_env = playbook_environment("http://127.0.0.1:9", tmp_path)
    full_env.update(env)
    cmd = [sys.executable, "-c", WRAPPER, "-i", str(REPO / "inventory" / "localhost.yml"), str(playbook), "-vvvv"]
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300, check=False)


def frozen_at_exit(proc: subprocess.CompletedProcess) -> int:
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("frozen at exit: ")]
    return int(line.rpartition(" ")[2])


def test_the_checkouts_configuration_ends_the_run_with_the_collector_set_aside(tmp_path):
    proc = run(tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Loading callback plugin flora.deploy.fast_exit of type aggregate" in proc.stdout
    assert '"msg": "the play ran"' in proc.stdout
    assert "ok=1" in proc.stdout
    assert frozen_at_exit(proc) > 0
    # ansible-playbook's exit handlers still ran: its local temporary directory is gone.
    assert list((tmp_path / "ansible-tmp").iterdir()) == []


def test_callbacks_enabled_in_the_environment_replace_it(tmp_path):
    proc = run(tmp_path, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"msg": "the play ran"' in proc.stdout
    assert "Say something -" in proc.stdout  # profile_tasks' timing line: the environment's callback ran
    assert "flora.deploy.fast_exit" not in proc.stdout
    assert frozen_at_exit(proc) == 0


def test_named_beside_others_in_the_environment_it_still_runs(tmp_path):
    proc = run(tmp_path, ANSIBLE_CALLBACKS_ENABLED="flora.deploy.fast_exit,ansible.posix.profile_tasks")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Say something -" in proc.stdout  # profile_tasks' timing line
    assert frozen_at_exit(proc) > 0
