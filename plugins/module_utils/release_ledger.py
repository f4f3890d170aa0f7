# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The release ledger: one JSON file on the host recording each release's commit, time and status."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from ansible_collections.flora.deploy.plugins.module_utils.release_deps import MARKER as DEPS_MARKER

STATUSES = ("built", "live", "previous", "failed", "pruned")
LEDGER_VERSION = 1


class LedgerError(ValueError):
    pass


def empty_ledger() -> dict[str, Any]:
    return {"version": LEDGER_VERSION, "current": None, "releases": []}


def parse_ledger(text: str | None) -> dict[str, Any]:
    if not text or not text.strip():
        return empty_ledger()
    try:
        ledger = json.loads(text)
    except ValueError as exc:
        raise LedgerError(f"the ledger is not valid JSON: {exc}") from exc
    if not isinstance(ledger, dict) or not isinstance(ledger.get("releases"), list):
        raise LedgerError("the ledger has no 'releases' list")
    ledger.setdefault("current", None)
    ledger.setdefault("version", LEDGER_VERSION)
    return ledger


def render_ledger(ledger: dict[str, Any]) -> str:
    return json.dumps(ledger, indent=2, sort_keys=True) + "\n"


def find_release(ledger: dict[str, Any], commit: str) -> dict[str, Any] | None:
    for release in ledger["releases"]:
        if release["commit"] == commit:
            return release
    return None


def record_release(
    ledger: dict[str, Any],
    commit: str,
    status: str,
    now: str,
    ref: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """A copy of ``ledger`` with ``commit`` in ``status``; ``live`` demotes the former live release."""
    if status not in STATUSES:
        raise LedgerError(f"unknown status {status!r} (known: {', '.join(STATUSES)})")
    ledger = json.loads(json.dumps(ledger))
    release = find_release(ledger, commit)
    if release is None:
        release = {"commit": commit, "created_at": now}
        ledger["releases"].append(release)
    if status == "live":
        for other in ledger["releases"]:
            if other is not release and other.get("status") == "live":
                other["status"] = "previous"
        ledger["current"] = commit
        release["deployed_at"] = now
    elif ledger.get("current") == commit:
        ledger["current"] = None
    release["status"] = status
    release["updated_at"] = now
    if ref is not None:
        release["ref"] = ref
    if message is not None:
        release["message"] = message
    elif "message" in release and status != "failed":
        del release["message"]
    return ledger


def last_good(ledger: dict[str, Any], exclude: str | None = None) -> str | None:
    """The most recently deployed release that served successfully, other than ``exclude``."""
    candidates = [
        release
        for release in ledger["releases"]
        if release.get("status") in ("live", "previous") and release["commit"] != exclude and release.get("deployed_at")
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda release: release["deployed_at"])["commit"]


def releases_to_prune(ledger: dict[str, Any], keep: int, present: list[str]) -> list[str]:
    """Release directories beyond the newest ``keep`` in all; the current and the last good one always stay."""
    protected = {ledger.get("current"), last_good(ledger, exclude=ledger.get("current"))}
    known = {release["commit"]: release for release in ledger["releases"]}
    ordered = sorted(
        present,
        key=lambda commit: (known.get(commit, {}).get("updated_at") or "", commit),
        reverse=True,
    )
    kept = len(protected & set(present))
    prune = []
    for commit in ordered:
        if commit in protected:
            continue
        if kept < keep:
            kept += 1
            continue
        prune.append(commit)
    return prune


# Pruned release directories are renamed to this prefix at once, and deleted in the background.
PRUNED_PREFIX = ".pruned-"


def set_aside(releases_dir: str, commit: str) -> str:
    """Rename the release directory of ``commit`` out of the releases, to be deleted; returns its new path.

    A symbolic link is refused: it is not a release directory, and what it points at is not ours to delete.
    """
    path = os.path.join(releases_dir, commit)
    if os.path.islink(path):
        raise OSError(f"{path} is a symbolic link, not a release directory")
    aside = os.path.join(releases_dir, PRUNED_PREFIX + commit)
    number = 1
    while os.path.lexists(aside):
        aside = os.path.join(releases_dir, f"{PRUNED_PREFIX}{commit}.{number}")
        number += 1
    os.rename(path, aside)
    return aside


def set_aside_dirs(releases_dir: str) -> list[str]:
    """Directories set aside by prunes and not deleted yet."""
    return sorted(
        os.path.join(releases_dir, name) for name in os.listdir(releases_dir) if name.startswith(PRUNED_PREFIX)
    )


def deps_store_link(deps_path: str) -> str | None:
    """Where a release links to the shared install ``deps_path``, relative to the release; None without its marker."""
    try:
        with open(os.path.join(deps_path, DEPS_MARKER), encoding="utf-8") as handle:
            store = json.load(handle).get("store")
    except (OSError, ValueError, AttributeError):
        return None
    return store if isinstance(store, str) else None


def unused_deps(releases_dir: str, deps_dir: str, gone: Iterable[str] = ()) -> list[str]:
    """Entries of ``deps_dir`` that no directory in ``releases_dir`` links to, pruned releases and ``gone`` aside.

    Work directories of unfinished builds count as releases: a build that is retried links the same install.
    What an interrupted sharing left (a hidden directory, or one without its marker) is unused too.
    """
    try:
        names = sorted(os.listdir(deps_dir))
    except FileNotFoundError:
        return []
    gone = set(gone)
    releases = [
        os.path.join(releases_dir, name)
        for name in os.listdir(releases_dir)
        if not name.startswith(PRUNED_PREFIX) and name not in gone
    ]
    unused = []
    for name in names:
        if name.startswith(PRUNED_PREFIX):
            continue
        path = os.path.join(deps_dir, name)
        store = None if name.startswith(".") else deps_store_link(path)
        store_dir = os.path.join(path, ".pnpm")
        if store is None or not any(links_to(os.path.join(release, store), store_dir) for release in releases):
            unused.append(name)
    return unused


def links_to(link: str, target: str) -> bool:
    """Whether ``link`` is a symbolic link to ``target``."""
    try:
        pointed = os.readlink(link)
    except OSError:
        return False
    return os.path.normpath(os.path.join(os.path.dirname(link), pointed)) == os.path.normpath(target)
