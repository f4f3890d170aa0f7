# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The per-host deploy lock: a directory created atomically with mkdir, its owner file naming the holder."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

OWNER_FILE = "owner"


def read_owner(path: str) -> str:
    """Who holds the lock at ``path``, as its owner file says; empty when there is no owner file."""
    try:
        with open(os.path.join(path, OWNER_FILE), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _remove(path: str) -> None:
    """Delete a lock; another run may have deleted it first. Any other error is raised: the lock stays."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass


def _claim(path: str, owner: str) -> bool:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return False
    with open(os.path.join(path, OWNER_FILE), "w", encoding="utf-8") as handle:
        handle.write(owner + "\n")
    return True


def take_lock(
    path: str,
    owner: str,
    timeout: float = 0,
    lease: float = 1800,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, list[str]]:
    """Take the lock for ``owner``, waiting up to ``timeout`` seconds for its holder.

    A lock older than ``lease`` seconds was left by a run that died, and is taken over.
    Returns the holder (empty when ``owner`` took the lock) and notes about locks taken over.
    """
    deadline = clock() + timeout
    notes = []
    while not _claim(path, owner):
        try:
            age = clock() - os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        if age > lease:
            notes.append(f"took over a lock left {int(age)} s ago by {read_owner(path) or 'unknown'}")
            _remove(path)
            continue
        if clock() >= deadline:
            return read_owner(path) or "unknown", notes
        sleep(1)
    return "", notes


def take_over_lock(path: str, owner: str, holder: str) -> str:
    """Take the lock from ``holder``, known to be dead; returns whoever holds it if someone else got there first."""
    release_lock(path, holder)
    if _claim(path, owner):
        return ""
    return read_owner(path) or "unknown"


def release_lock(path: str, owner: str) -> bool:
    """Delete the lock if ``owner`` holds it; whether it did."""
    if read_owner(path) != owner:
        return False
    _remove(path)
    return True
