# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fast_exit
type: aggregate
short_description: End ansible-playbook without the garbage collection Python runs as it exits
version_added: 0.1.0
description:
  - Once the play recap is printed, sets every object ansible-playbook holds aside from Python's cyclic garbage
    collector (with C(gc.freeze)). The collection Python runs over them as the process exits, 0.1 to 0.2 s after the
    recap of every run, is then skipped; the process ends as soon as the recap is out.
  - It leaves nothing undone. The results and the recap are written before it acts, and ansible-playbook's
    temporary files are removed by its exit handlers, which still run.
  - The checkout's C(ansible.cfg) enables it. Elsewhere, add it to C(callbacks_enabled) in the C([defaults])
    section of C(ansible.cfg), or set C(ANSIBLE_CALLBACKS_ENABLED=flora.deploy.fast_exit). A
    C(ANSIBLE_CALLBACKS_ENABLED) set in the environment replaces the list in C(ansible.cfg), so name it there too
    (for example C(ANSIBLE_CALLBACKS_ENABLED=flora.deploy.fast_exit,ansible.posix.profile_tasks)).
author:
  - Flora platform team (@flora-marketplace)
requirements:
  - Enabled in the configuration (see above).
"""

import gc

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Freezes the collector's view of the heap once the last callback event of a run has been sent."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "flora.deploy.fast_exit"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        # The last event of a run: the recap is printed (by the stdout callback) in the same event. What follows
        # is ansible-playbook's cleanup and the interpreter's exit, where a full collection of every object the
        # run loaded (botocore's models among them, on a controller that ran an AWS module) is the slow part.
        gc.freeze()
