# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flora.deploy.host_script: a shell script run on the host in one round trip, without Python there.

With pipelining, the script goes to the host on the connection's standard input and runs straight away: no
module payload is built on the controller and no Python starts on the host (together about 0.4 s a task on a
small host). Without pipelining (or with a become method that cannot pipeline), it runs exactly as
ansible.builtin.shell would run it.
"""

from __future__ import annotations

import shlex

from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = dict(
    cmd=dict(type="str", required=True),
    chdir=dict(type="path"),
    executable=dict(type="path", default="/bin/bash"),
)


def runner_command(env_prefix: str, executable: str, chdir: str | None) -> str:
    """The POSIX sh command that runs the script it reads from standard input.

    The script is stored in a private temporary file that is unlinked once opened, so it is on no command line
    and nothing is left behind; the script itself runs with standard input from /dev/null, so a command in it that
    reads its input cannot swallow the rest of the script.
    """
    steps = [
        "f=$(mktemp) || exit 125",
        'cat >"$f" || { rm -f "$f"; exit 125; }',
        'exec 3<"$f"',
        'rm -f "$f"',
    ]
    if chdir:
        steps.append(f"cd -- {shlex.quote(chdir)} || exit 1")
    steps.append(" ".join(filter(None, [env_prefix, shlex.quote(executable), "/dev/fd/3 </dev/null"])))
    return "; ".join(steps)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = False
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        script = args["cmd"]
        if not script.endswith("\n"):
            script += "\n"

        if not self._connection.is_pipelining_enabled():
            command_args = dict(
                _raw_params=script, _uses_shell=True, executable=args["executable"], chdir=args["chdir"]
            )
            result.update(self._execute_module("ansible.legacy.command", module_args=command_args, task_vars=task_vars))
            return result

        command = runner_command(self._compute_environment_string(), args["executable"], args["chdir"])
        outcome = self._low_level_execute_command(command, sudoable=True, in_data=script.encode("utf-8"))
        rc = outcome["rc"]
        stdout = outcome["stdout"].rstrip("\r\n")
        stderr = outcome["stderr"].rstrip("\r\n")
        result.update(
            changed=True,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
            stdout_lines=stdout.splitlines(),
            stderr_lines=stderr.splitlines(),
        )
        if rc != 0:
            result.update(failed=True, msg="non-zero return code")
        return result
