"""module_utils/redeploy_decision.py: what a redeploy or a rollback does, from what the host runs."""

from __future__ import annotations

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.redeploy_decision import (
    DecisionError,
    HostState,
    changed_migrations,
    plan_redeploy,
    plan_rollback,
)

LIVE, NEW, OLD = "a" * 40, "b" * 40, "c" * 40


def host(linked=LIVE, current=LIVE, last_good=OLD, built=(LIVE, OLD)) -> HostState:
    return HostState(linked=linked, current=current, last_good=last_good, built=frozenset(built))


def test_the_live_commit_with_the_same_env_file_is_nothing_to_do():
    plan = plan_redeploy(LIVE, "main", host(), env_changed=False, env_live=True, migrations=[])
    assert plan.action == "none"
    assert plan.summary == f"nothing to do: {LIVE[:12]} is live with this env file"
    assert not (plan.build or plan.switch or plan.migrate)


@pytest.mark.parametrize(
    ("env_changed", "env_live", "why"),
    [(True, True, "the env file changed"), (False, False, "the env file was rendered by a run that did not reload")],
)
def test_new_secrets_alone_reload_the_live_release(env_changed, env_live, why):
    plan = plan_redeploy(LIVE, "main", host(), env_changed=env_changed, env_live=env_live, migrations=None)
    assert plan.action == "reload"
    assert (plan.commit, plan.build, plan.switch, plan.migrate) == (LIVE, False, False, False)
    assert plan.notes[0].startswith(why)


def test_a_new_commit_is_built_switched_to_and_migrated_when_a_migration_changed():
    plan = plan_redeploy(
        NEW, "v2", host(), False, True, migrations=["apps/backend/prisma/migrations/2_x/migration.sql"]
    )
    assert plan.as_dict() == {
        "action": "release",
        "commit": NEW,
        "live": LIVE,
        "build": True,
        "migrate": True,
        "switch": True,
        "fallback": LIVE,
        "summary": f"build v2 ({NEW[:12]}), apply its migrations, switch from {LIVE[:12]} and reload",
        "notes": [f"1 migration file(s) changed since {LIVE[:12]}"],
    }


def test_migrations_are_skipped_when_none_changed_and_run_when_that_is_unknown():
    skipped = plan_redeploy(NEW, "v2", host(), False, True, migrations=[])
    assert not skipped.migrate
    assert skipped.notes == (f"no migration changed since {LIVE[:12]}: no migrations run",)
    assert "migrations" not in skipped.summary
    unknown = plan_redeploy(NEW, "v2", host(), False, True, migrations=None)
    assert unknown.migrate
    off = plan_redeploy(NEW, "v2", host(), False, True, migrations=None, migrate=False)
    assert not off.migrate
    assert off.notes == ("migrations are off: none run",)


def test_a_built_commit_is_switched_to_without_a_build():
    plan = plan_redeploy(OLD, "v1", host(), False, True, migrations=[])
    assert (plan.action, plan.build, plan.switch) == ("release", False, True)
    assert plan.summary.startswith(f"use the built release of v1 ({OLD[:12]})")


def test_an_interrupted_switch_goes_through_the_switch_again_and_falls_back_to_the_confirmed_release():
    # The link points at the new release, but the ledger never recorded it as live.
    plan = plan_redeploy(NEW, "v2", host(linked=NEW, built=(LIVE, NEW)), False, True, migrations=[])
    assert (plan.action, plan.build, plan.switch, plan.fallback) == ("release", False, True, LIVE)


def test_changed_migrations_counts_additions_changes_and_renames_but_not_deletions():
    changes = [
        ("A", "apps/backend/prisma/migrations/3_new/migration.sql"),
        ("M", "apps/backend/prisma/schema.prisma"),
        ("D", "apps/backend/prisma/migrations/1_gone/migration.sql"),
        ("R100", "apps/backend/old.sql", "apps/backend/prisma/migrations/4_moved/migration.sql"),
        ("M", "apps/backend/src/index.ts"),
    ]
    # As `git diff --name-status -z` writes them.
    name_status = "".join(field + "\0" for change in changes for field in change)
    patterns = ["apps/backend/prisma/migrations/**", "/apps/backend/prisma/schema.prisma"]
    assert changed_migrations(name_status, patterns) == [
        "apps/backend/prisma/migrations/3_new/migration.sql",
        "apps/backend/prisma/migrations/4_moved/migration.sql",
        "apps/backend/prisma/schema.prisma",
    ]
    assert changed_migrations("", patterns) == []


def test_a_rollback_goes_to_the_last_good_release_or_the_one_named():
    plan = plan_rollback(None, host(), "/srv/releases")
    assert (plan.action, plan.commit, plan.switch, plan.build, plan.migrate, plan.fallback) == (
        "release",
        OLD,
        True,
        False,
        False,
        LIVE,
    )
    assert plan.summary == f"switch from {LIVE[:12]} back to {OLD[:12]} and reload"
    assert plan_rollback(LIVE, host(), "/srv/releases").action == "none"


@pytest.mark.parametrize(
    ("rollback_to", "last_good", "message"),
    [
        ("0123abc", OLD, "release 0123abc is not a built release in /srv/releases"),
        (None, None, "the ledger has no earlier good release"),
    ],
)
def test_a_rollback_without_a_built_release_to_go_to_fails_naming_why(rollback_to, last_good, message):
    with pytest.raises(DecisionError, match=message) as raised:
        plan_rollback(rollback_to, host(last_good=last_good), "/srv/releases")
    assert str(raised.value).endswith(f"{LIVE[:12]} is still serving.")
