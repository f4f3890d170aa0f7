# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_script
short_description: Run a shell script on the host in one round trip, without Python on the host
version_added: 0.1.0
description:
  - Runs the script O(cmd) with O(executable) on the host, like M(ansible.builtin.shell), and returns its exit
    code and output.
  - With pipelining (the connection and the become method support it, and it is enabled, as this collection's
    C(ansible.cfg) does), the script is sent on the connection's standard input and runs at once. No module is
    built on the controller and no Python starts on the host, which saves about 0.4 s a task on a small host,
    most of a short step's time.
  - The script is kept in a private temporary file that is deleted as soon as it is opened, so it never appears on
    a command line. It runs with its standard input from C(/dev/null).
  - The task's C(environment) applies to the script. With C(become), the script runs as the become user.
  - Without pipelining (for example over C(containers.podman.podman), or with C(ANSIBLE_KEEP_REMOTE_FILES)), the
    script runs through M(ansible.builtin.command) as M(ansible.builtin.shell) runs it, with the same results.
  - This is an action plugin. It runs on the controller and sends the script through the task's connection.
author:
  - Flora platform team (@flora-marketplace)
options:
  cmd:
    description: The script. A failing command does not stop it unless the script says so (for example C(set -e)).
    type: str
    required: true
  chdir:
    description: Directory to change into before the script runs.
    type: path
  executable:
    description: The shell that runs the script.
    type: path
    default: /bin/bash
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: none
    details:
      - Skipped in check mode, like M(ansible.builtin.shell). Set C(check_mode=false) on a task that only reads.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Whatever the script does; it reports C(changed) unless the task sets C(changed_when).
notes:
  - The script's output is returned as it is, so a task that prints secrets needs C(no_log).
seealso:
  - module: ansible.builtin.shell
"""

EXAMPLES = r"""
- name: Build the release as the app user
  flora.deploy.host_script:
    cmd: |
      set -euo pipefail
      pnpm install --frozen-lockfile
      pnpm --filter backend build
    chdir: /home/ubuntu/Flora/releases/.next
  become: true
  become_user: ubuntu
  environment:
    PATH: /usr/local/bin:/usr/bin:/bin
    CI: "true"
  register: build
  changed_when: true
"""

RETURN = r"""
rc:
  description: The script's exit code.
  returned: always
  type: int
  sample: 0
stdout:
  description: What the script printed on its standard output, without trailing newlines.
  returned: always
  type: str
stdout_lines:
  description: RV(stdout) split into lines.
  returned: always
  type: list
  elements: str
stderr:
  description: What the script printed on its standard error, without trailing newlines.
  returned: always
  type: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: always
  type: list
  elements: str
"""
