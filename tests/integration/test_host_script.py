"""flora.deploy.host_script through ansible-playbook on the controller (the local connection pipelines)."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def script(run_playbook, tmp_path):
    def run(cmd: str, *args: str, env: dict | None = None, host_vars: dict | None = None, **options) -> dict:
        variables = {"script_args": {"cmd": cmd, **options}, "script_env": env or {}, **(host_vars or {})}
        if len(cmd) > 10000:
            (tmp_path / "script.sh").write_text(cmd)
            variables.update(script_args=options, script_file=str(tmp_path / "script.sh"))
        result = run_playbook("host_script/run.yml", variables, *args)
        assert result.rc == 0, result
        return json.loads((tmp_path / "result.json").read_text())

    return run


def test_runs_the_script_with_its_environment_and_directory_and_keeps_the_streams_apart(script, tmp_path):
    work = tmp_path / "work dir"
    work.mkdir()
    result = script(
        'set -euo pipefail\necho "out $GREETING"\necho "err" >&2\npwd\nprintf "%s" "$(cat)"\necho "[$BASH_VERSION]" | cut -c1-2',
        env={"GREETING": "hello 'world' $HOME"},
        chdir=str(work),
    )

    assert not result.get("failed"), result
    assert result["changed"]
    assert result["rc"] == 0
    # The variable arrives as given, not expanded; the script reads nothing from its standard input.
    assert result["stdout_lines"] == ["out hello 'world' $HOME", str(work), "[5"]
    assert result["stderr"] == "err"


def test_a_failing_script_fails_the_task_with_its_exit_code_and_output(script):
    result = script("echo before\necho 'cannot go on' >&2\nexit 7\necho after")

    assert result["failed"]
    assert result["rc"] == 7
    assert result["msg"] == "non-zero return code"
    assert result["stdout"] == "before"
    assert result["stderr"] == "cannot go on"


def test_runs_without_python_on_the_host_and_leaves_no_file_behind(script, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # A script larger than one command-line argument may be (128 KiB on Linux).
    filler = "\n".join(f": line {number} {'x' * 100}" for number in range(2000))
    result = script(
        f'{filler}\necho "$TMPDIR"; ls -A "$TMPDIR"',
        env={"TMPDIR": str(scratch)},
        host_vars={"script_python": "/nonexistent/python3"},
    )

    assert not result.get("failed"), result
    # The script's own copy was deleted as soon as it was opened.
    assert result["stdout_lines"] == [str(scratch)]
    assert os.listdir(scratch) == []


def test_without_pipelining_it_runs_as_the_shell_module_does(script, tmp_path):
    # It needs Python on the host then.
    missing = script("true", host_vars={"ansible_pipelining": False, "script_python": "/nonexistent/python3"})
    assert missing["failed"] and "/nonexistent/python3" in missing.get("module_stderr", "") + missing["msg"], missing

    result = script(
        'echo "out $GREETING"; echo err >&2; pwd; exit 3',
        env={"GREETING": "hello"},
        chdir=str(tmp_path),
        host_vars={"ansible_pipelining": False},
    )

    assert result["failed"]
    assert result["rc"] == 3
    assert result["stdout_lines"] == ["out hello", str(tmp_path)]
    assert result["stderr"] == "err"
    # ansible.builtin.command ran it, on Python.
    assert "start" in result


def test_check_mode_skips_the_script(script, tmp_path):
    marker = tmp_path / "ran"
    result = script(f"touch {marker}", "--check")

    assert result["skipped"]
    assert not marker.exists()
