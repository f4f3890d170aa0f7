"""A run with the checkout's configuration and the pinned requirements writes nothing but its results.

Warnings from the libraries ansible-playbook imports (cryptography's deprecation of DSA, from its release 51 on,
is printed on every run) would reach every user's terminal and every AWX job's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import CONTROLLER_PLAY, REPO, playbook_environment


def test_a_run_writes_nothing_to_stderr(tmp_path: Path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps(CONTROLLER_PLAY))
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(REPO / "inventory" / "localhost.yml"),
            str(playbook),
        ],
        cwd=REPO,
        env=playbook_environment("http://127.0.0.1:9", tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"msg": "the play ran"' in proc.stdout
    assert proc.stderr == ""
