# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a backend redeploy or rollback does on a host, decided from what the host runs.

flora.deploy.redeploy_preflight reads the host (the current link, the release ledger, the built releases, the env
file it renders, the migrations the target commit changes) and returns this plan; the backend_redeploy role runs
the steps it names:

- release: build the commit unless it is built, apply its migrations when it changes any, switch to it, reload,
  check, record; on a failure after the switch, go back to the fallback;
- reload: the live release with a new env file (secrets changed), no build and no switch;
- none: the commit is live with this env file, and the app was reloaded with it.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.flora.deploy.plugins.module_utils.deploy_plan import parse_name_status
from ansible_collections.flora.deploy.plugins.module_utils.path_globs import glob_to_regex

ACTIONS = ("release", "reload", "none")


class DecisionError(Exception):
    pass


@dataclass(frozen=True)
class HostState:
    """What the host runs: the release the current link points at, the one the ledger records as live, the
    newest earlier release that served, and which releases are built."""

    linked: str
    current: str | None
    last_good: str | None
    built: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Plan:
    action: str
    commit: str
    live: str
    build: bool = False
    migrate: bool = False
    switch: bool = False
    fallback: str = ""
    summary: str = ""
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "action": self.action,
            "commit": self.commit,
            "live": self.live,
            "build": self.build,
            "migrate": self.migrate,
            "switch": self.switch,
            "fallback": self.fallback,
            "summary": self.summary,
            "notes": list(self.notes),
        }


def short(commit: str | None) -> str:
    return (commit or "")[:12]


def changed_migrations(name_status: str, patterns: t.Sequence[str]) -> list[str]:
    """Paths matching ``patterns`` that `git diff --name-status` (live..target) adds, changes or renames into.

    A migration the target deletes is no reason to migrate: a database does not un-apply it.
    """
    matchers = [re.compile(glob_to_regex(pattern.lstrip("/"))) for pattern in patterns]
    changed = []
    for change in parse_name_status(name_status):
        if change.status.startswith("D"):
            continue
        if any(matcher.match(change.path) for matcher in matchers):
            changed.append(change.path)
    return sorted(changed)


def plan_redeploy(
    target: str,
    ref: str,
    host: HostState,
    env_changed: bool,
    env_live: bool,
    migrations: t.Sequence[str] | None,
    migrate: bool = True,
) -> Plan:
    """The plan for deploying ``target`` (``ref`` resolved).

    ``migrations``: the migration files the target changes since the live release, None when unknown (always
    migrate). ``env_changed``: the env file was rendered with new values now; ``env_live``: the app was last
    reloaded with the env file as it is (a run that died before its reload leaves it false).
    """
    live = host.linked
    if live == target and host.current == target:
        if env_changed or not env_live:
            why = "changed" if env_changed else "was rendered by a run that did not reload the app"
            return Plan(
                "reload",
                target,
                live,
                fallback=live,
                summary=f"reload {short(live)} with the new env file",
                notes=(f"the env file {why}",),
            )
        return Plan("none", target, live, summary=f"nothing to do: {short(target)} is live with this env file")

    # An interrupted redeploy can leave current switched but the switch unconfirmed (the ledger disagrees): that
    # commit goes through the switch, reload and checks again, with the confirmed release as fallback.
    fallback = host.current if host.current and host.current != target else live
    build = target not in host.built
    if not migrate:
        run_migrations, note = False, "migrations are off: none run"
    elif migrations is None:
        run_migrations, note = True, f"the migrations run: what changed since {short(live)} is unknown"
    elif migrations:
        run_migrations, note = True, f"{len(migrations)} migration file(s) changed since {short(live)}"
    else:
        run_migrations, note = False, f"no migration changed since {short(live)}: no migrations run"
    steps = [f"build {ref} ({short(target)})" if build else f"use the built release of {ref} ({short(target)})"]
    if run_migrations:
        steps.append("apply its migrations")
    summary = ", ".join(steps) + f", switch from {short(live)} and reload"
    return Plan(
        "release",
        target,
        live,
        build=build,
        migrate=run_migrations,
        switch=True,
        fallback=fallback,
        summary=summary,
        notes=(note,),
    )


def plan_rollback(rollback_to: str | None, host: HostState, releases_dir: str) -> Plan:
    """The plan for going back to ``rollback_to`` (the ledger's last good release when empty), which must be built."""
    target = rollback_to or host.last_good or ""
    if not target:
        raise DecisionError(
            f"No release to roll back to: the ledger has no earlier good release. {short(host.linked)} is still serving."
        )
    if target not in host.built:
        raise DecisionError(
            f"No release to roll back to: release {target} is not a built release in {releases_dir}. "
            f"{short(host.linked)} is still serving."
        )
    if target == host.linked and host.current == target:
        return Plan("none", target, host.linked, summary=f"nothing to do: {short(target)} is live")
    return Plan(
        "release",
        target,
        host.linked,
        switch=True,
        fallback=host.linked,
        summary=f"switch from {short(host.linked)} back to {short(target)} and reload",
    )
