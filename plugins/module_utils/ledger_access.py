# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking the deploy lock and reading the release ledger on the host, for flora.deploy.release_ledger and
flora.deploy.redeploy_preflight. Takes the module for its warnings and failures.
"""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.flora.deploy.plugins.module_utils.deploy_lock import release_lock, take_lock, take_over_lock
from ansible_collections.flora.deploy.plugins.module_utils.release_ledger import LedgerError, parse_ledger


def read_text(path: str) -> str | None:
    """The ledger file's text; None when there is none yet."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def link_target_name(path: str) -> str:
    """Name of the directory a symbolic link points at; empty when path is not a link."""
    try:
        return os.path.basename(os.readlink(path).rstrip("/"))
    except OSError:
        return ""


def take_lock_for_module(module) -> str:
    """Take the lock of the module's lock options (lock, lock_owner, lock_timeout, lock_lease, lock_takeover_from),
    or take it over from a holder known to be dead; the holder when another run has it."""
    params = module.params
    lock, owner = params["lock"], params["lock_owner"]
    try:
        if params["lock_takeover_from"]:
            return take_over_lock(lock, owner, params["lock_takeover_from"])
        holder, notes = take_lock(lock, owner, params["lock_timeout"], params["lock_lease"])
    except OSError as e:
        module.fail_json(msg=f"Cannot take the lock {lock}: {e}")
    for note in notes:
        module.warn(f"{lock}: {note}")
    return holder


def read_ledger_for_module(module, path: str, lock: str | None, owner: str | None) -> tuple[str | None, dict[str, Any]]:
    """The ledger's text and content; on failure, the lock this run holds (if any) is released first."""
    try:
        text = read_text(path)
        return text, parse_ledger(text)
    except (OSError, LedgerError) as e:
        if lock:
            release_lock(lock, owner)
        module.fail_json(msg=f"Cannot read {path}: {e}")
