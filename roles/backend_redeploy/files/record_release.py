# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record a release in the ledger from the reload's round trip, once its checks passed.

  record_release.py <module_utils root> <options JSON>

<module_utils root> holds ansible_collections/flora/deploy/plugins/module_utils with ledger_update.py and what it
imports, copied from flora.deploy; <options JSON> takes flora.deploy.release_ledger's options. It does what one
release_ledger task does (record, prune, release the lock) without a module to build and start on the host, and
prints one line, "recorded <result JSON>". It exits 0 even when recording failed (the result says "failed"): the
release passed its checks, and a ledger that could not be written is no reason to roll it back.
"""

from __future__ import annotations

import json
import subprocess
import sys


class Recorded(Exception):
    """The end of update_ledger: its result."""

    def __init__(self, result: dict):
        super().__init__(result.get("msg", ""))
        self.result = result


class ScriptModule:
    """The parts of AnsibleModule that update_ledger uses."""

    check_mode = False

    def __init__(self, params: dict):
        self.params = params
        self.warnings: list[str] = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)

    def run_command(self, command: str, use_unsafe_shell: bool = False):
        done = subprocess.run(command, shell=use_unsafe_shell, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr

    def exit_json(self, **result):
        raise Recorded(dict(result, warnings=self.warnings))

    def fail_json(self, msg: str, **result):
        raise Recorded(dict(result, failed=True, msg=msg, warnings=self.warnings))


def record(options: dict) -> dict:
    from ansible_collections.flora.deploy.plugins.module_utils.ledger_update import ARGUMENT_SPEC, update_ledger

    unknown = sorted(set(options) - set(ARGUMENT_SPEC))
    if unknown:
        return {"failed": True, "msg": f"unknown options: {', '.join(unknown)}"}
    params = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    params.update(options)
    try:
        update_ledger(ScriptModule(params))
    except Recorded as done:
        return done.result
    return {"failed": True, "msg": "the ledger update ended without a result"}


def main(argv: list[str]) -> int:
    sys.path.insert(0, argv[0])
    try:
        result = record(json.loads(argv[1]))
    # Whatever stops it, the release passed its checks: a failed result, never a failed reload.
    except Exception as e:  # noqa: BLE001  # pylint: disable=broad-exception-caught
        result = {"failed": True, "msg": f"{type(e).__name__}: {e}"}
    print("recorded " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
