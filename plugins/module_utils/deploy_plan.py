# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Which side of Flora a change needs redeployed: the deployment note's "When To Redeploy" table as code.

Each side is judged on the git changes between the commit it runs (the backend's release ledger, the
frontend's publish manifest) and the target commit, plus the env values that changed for it:

- frontend source, assets or build-time env values: the frontend only;
- API code, Prisma schema or migrations, backend dependencies, the lockfile: the backend (with migrations
  when the schema or migrations changed);
- workspace-wide files (shared types, root package.json, tsconfig): both, backend first (API contract first);
- backend env values only (Parameter Store): refresh the backend's env file and reload, no rebuild;
- nothing relevant: nothing.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.flora.deploy.plugins.module_utils.path_globs import glob_to_regex

MAX_REASONS = 20
EFFECTS = ("ignore", "frontend", "backend", "migrations", "shared")

# First match wins. User rules go before these.
DEFAULT_RULES: tuple[dict[str, str], ...] = (
    {"glob": "**/*.md", "effect": "ignore"},
    {"glob": "docs/**", "effect": "ignore"},
    {"glob": ".github/**", "effect": "ignore"},
    {"glob": "terraform/**", "effect": "ignore"},
    {"glob": "**/.gitignore", "effect": "ignore"},
    {"glob": "LICENSE*", "effect": "ignore"},
    {"glob": "apps/backend/prisma/schema.prisma", "effect": "migrations"},
    {"glob": "apps/backend/prisma/migrations/**", "effect": "migrations"},
    {"glob": "apps/backend/**", "effect": "backend"},
    {"glob": "pnpm-lock.yaml", "effect": "backend"},
    {"glob": "apps/frontend/**", "effect": "frontend"},
    {"glob": "packages/**", "effect": "shared"},
    {"glob": "shared/**", "effect": "shared"},
    {"glob": "apps/shared/**", "effect": "shared"},
    {"glob": "package.json", "effect": "shared"},
    {"glob": "pnpm-workspace.yaml", "effect": "shared"},
    {"glob": "tsconfig*.json", "effect": "shared"},
    {"glob": ".npmrc", "effect": "shared"},
    {"glob": ".nvmrc", "effect": "shared"},
)

# What each effect asks of each side.
SIDES_OF_EFFECT = {
    "ignore": (),
    "frontend": ("frontend",),
    "backend": ("backend",),
    "migrations": ("backend",),
    "shared": ("backend", "frontend"),
}


class PlanError(Exception):
    pass


@dataclass(frozen=True)
class PathRule:
    glob: str
    effect: str
    pattern: re.Pattern = field(compare=False, repr=False)

    def matches(self, path: str) -> bool:
        return self.pattern.match(path) is not None


def compile_rules(user_rules: t.Iterable[t.Mapping[str, t.Any]] | None = None) -> list[PathRule]:
    rules = []
    for number, rule in enumerate(list(user_rules or []) + list(DEFAULT_RULES), start=1):
        glob, effect = rule.get("glob"), rule.get("effect")
        if not glob or not isinstance(glob, str):
            raise PlanError(f"Path rule {number} needs a glob")
        if effect not in EFFECTS:
            raise PlanError(f"Path rule {number} ({glob}) has effect {effect!r}; use one of {', '.join(EFFECTS)}")
        rules.append(
            PathRule(glob=glob.lstrip("/"), effect=effect, pattern=re.compile(glob_to_regex(glob.lstrip("/"))))
        )
    return rules


def effect_of(path: str, rules: t.Sequence[PathRule]) -> tuple[str, str | None]:
    """(effect, glob of the rule that decided); paths no rule matches are ignored."""
    for rule in rules:
        if rule.matches(path):
            return rule.effect, rule.glob
    return "ignore", None


@dataclass(frozen=True)
class Change:
    status: str
    path: str
    old_path: str | None = None

    def paths(self) -> list[str]:
        """A rename or copy touches both its old and its new path (a file moved out of a side changes it)."""
        return [self.path] if self.old_path is None else [self.old_path, self.path]

    def describe(self) -> str:
        if self.old_path is not None:
            return f"{self.status} {self.old_path} -> {self.path}"
        return f"{self.status} {self.path}"


def parse_name_status(text: str) -> list[Change]:
    """`git diff --name-status -z` output (NUL-separated) or its line form (tab-separated)."""
    if "\0" in text:
        fields = text.split("\0")
        if fields[-1] == "":
            fields.pop()
    else:
        fields = []
        for line in text.splitlines():
            if line.strip():
                fields.extend(line.split("\t"))
    changes = []
    i = 0
    while i < len(fields):
        status = fields[i]
        kind = status[:1]
        if not kind or kind not in "AMDTRCU":
            raise PlanError(f"Unexpected git status {status!r} in the change list")
        if kind in "RC":
            if i + 2 >= len(fields):
                raise PlanError(f"Git status {status} without both paths")
            changes.append(Change(status=kind, old_path=fields[i + 1], path=fields[i + 2]))
            i += 3
        else:
            if i + 1 >= len(fields):
                raise PlanError(f"Git status {status} without a path")
            changes.append(Change(status=kind, path=fields[i + 1]))
            i += 2
    return changes


@dataclass
class SidePlan:
    """What one side needs: `action` is none, refresh (env only, no build) or release (backend) / publish."""

    action: str = "none"
    migrations: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, t.Any]:
        return {"action": self.action, "migrations": self.migrations, "reasons": self.reasons}


@dataclass
class DeployPlan:
    backend: SidePlan
    frontend: SidePlan
    ignored: list[str]

    @property
    def order(self) -> list[str]:
        """Backend first: a new frontend may call API the old backend does not have yet."""
        return [side for side in ("backend", "frontend") if getattr(self, side).action != "none"]

    @property
    def summary(self) -> str:
        steps = []
        if self.backend.action == "release":
            steps.append("backend release" + (" with migrations" if self.backend.migrations else ""))
        elif self.backend.action == "refresh":
            steps.append("backend env refresh and reload (no build)")
        if self.frontend.action == "publish":
            steps.append("frontend build and publish")
        return ", then ".join(steps) if steps else "nothing to deploy"

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "backend": self.backend.to_dict(),
            "frontend": self.frontend.to_dict(),
            "order": self.order,
            "ignored": self.ignored,
            "summary": self.summary,
        }


def plan_side(
    side: str,
    changes: t.Sequence[Change] | None,
    env_changed: t.Sequence[str],
    rules: t.Sequence[PathRule],
    ignored: set[str],
    unknown_reason: str | None = None,
) -> SidePlan:
    """changes=None means the side's live commit is unknown: it is deployed in full."""
    plan = SidePlan()
    full_action = "release" if side == "backend" else "publish"
    if changes is None:
        plan.action = full_action
        plan.migrations = side == "backend"
        plan.reasons.append(unknown_reason or f"no {side} commit is live")
        return plan
    relevant = []
    for change in changes:
        for path in change.paths():
            effect, glob = effect_of(path, rules)
            if side not in SIDES_OF_EFFECT[effect]:
                if effect == "ignore":
                    ignored.add(path)
                continue
            plan.action = full_action
            if effect == "migrations":
                plan.migrations = True
            relevant.append(f"{change.describe()} ({effect}, rule {glob})")
            break
    plan.reasons.extend(relevant[:MAX_REASONS])
    if len(relevant) > MAX_REASONS:
        plan.reasons.append(f"and {len(relevant) - MAX_REASONS} more changed files")
    if env_changed:
        if plan.action == "none":
            # The frontend bakes its env into the bundle, so it must be rebuilt; the backend only reloads.
            plan.action = "refresh" if side == "backend" else "publish"
        plan.reasons.append(f"env values changed: {', '.join(sorted(env_changed))}")
    return plan


def plan_deploy(
    backend_changes: t.Sequence[Change] | None,
    frontend_changes: t.Sequence[Change] | None,
    backend_env_changed: t.Sequence[str] = (),
    frontend_env_changed: t.Sequence[str] = (),
    rules: t.Sequence[PathRule] | None = None,
    backend_unknown_reason: str | None = None,
    frontend_unknown_reason: str | None = None,
    sides: t.Collection[str] = ("backend", "frontend"),
) -> DeployPlan:
    """Sides left out of `sides` are not planned (action none, a reason saying so)."""
    rules = list(rules) if rules is not None else compile_rules()
    ignored: set[str] = set()
    planned = {}
    for side, changes, env_changed, unknown_reason in (
        ("backend", backend_changes, backend_env_changed, backend_unknown_reason),
        ("frontend", frontend_changes, frontend_env_changed, frontend_unknown_reason),
    ):
        if side in sides:
            planned[side] = plan_side(side, changes, env_changed, rules, ignored, unknown_reason)
        else:
            planned[side] = SidePlan(reasons=[f"{side} not planned"])
    return DeployPlan(backend=planned["backend"], frontend=planned["frontend"], ignored=sorted(ignored))
