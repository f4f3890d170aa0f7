from __future__ import annotations

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.deploy_plan import (
    Change,
    PlanError,
    compile_rules,
    parse_name_status,
    plan_deploy,
)
from ansible_collections.flora.deploy.plugins.module_utils.path_globs import glob_to_regex


def changes(*paths: str) -> list[Change]:
    return [Change(status="M", path=path) for path in paths]


def plan(paths=(), backend_env=(), frontend_env=(), rules=None):
    same = changes(*paths)
    return plan_deploy(
        same,
        same,
        backend_env_changed=backend_env,
        frontend_env_changed=frontend_env,
        rules=compile_rules(rules) if rules is not None else None,
    )


def actions(result) -> tuple[str, bool, str]:
    return result.backend.action, result.backend.migrations, result.frontend.action


# One test per row of the "When To Redeploy" table.


@pytest.mark.parametrize(
    "path",
    [
        "apps/frontend/src/App.jsx",
        "apps/frontend/src/pages/Checkout.tsx",
        "apps/frontend/public/images/Roses.jpg",
        "apps/frontend/index.html",
        "apps/frontend/vite.config.ts",
        "apps/frontend/package.json",
    ],
)
def test_ui_code_and_asset_changes_need_the_frontend_only(path):
    result = plan([path])
    assert actions(result) == ("none", False, "publish")
    assert result.order == ["frontend"]
    assert path in result.frontend.reasons[0]


def test_a_frontend_env_value_change_needs_a_frontend_rebuild_only():
    result = plan(frontend_env=["VITE_AUTH0_CLIENT_ID", "VITE_STRIPE_PUBLISHABLE_KEY"])
    assert actions(result) == ("none", False, "publish")
    assert result.frontend.reasons == ["env values changed: VITE_AUTH0_CLIENT_ID, VITE_STRIPE_PUBLISHABLE_KEY"]


@pytest.mark.parametrize(
    "path",
    [
        "apps/backend/src/index.ts",
        "apps/backend/src/routes/orders.ts",
        "apps/backend/package.json",
        "apps/backend/tsconfig.json",
        "pnpm-lock.yaml",
    ],
)
def test_api_code_and_dependency_changes_need_the_backend_only(path):
    result = plan([path])
    assert actions(result) == ("release", False, "none")
    assert result.order == ["backend"]


@pytest.mark.parametrize(
    "path",
    ["apps/backend/prisma/schema.prisma", "apps/backend/prisma/migrations/20260101000000_orders/migration.sql"],
)
def test_prisma_schema_and_migration_changes_need_the_backend_with_migrations(path):
    result = plan([path])
    assert actions(result) == ("release", True, "none")
    assert "migrations" in result.summary


def test_a_stripe_webhook_handler_change_needs_the_backend():
    assert actions(plan(["apps/backend/src/routes/webhooks/stripe.ts"])) == ("release", False, "none")


@pytest.mark.parametrize(
    "path", ["packages/types/src/order.ts", "shared/types.ts", "package.json", "tsconfig.base.json"]
)
def test_shared_types_and_workspace_files_need_both_backend_first(path):
    result = plan([path])
    assert actions(result) == ("release", False, "publish")
    assert result.order == ["backend", "frontend"]
    assert result.summary == "backend release, then frontend build and publish"


def test_env_values_used_by_both_sides_deploy_the_backend_first():
    result = plan(backend_env=["FRONTEND_URL"], frontend_env=["VITE_APP_URL"])
    assert actions(result) == ("refresh", False, "publish")
    assert result.order == ["backend", "frontend"]


def test_a_parameter_store_change_alone_refreshes_the_backend_without_a_build():
    result = plan(backend_env=["SMTP_PASS"])
    assert actions(result) == ("refresh", False, "none")
    assert result.summary == "backend env refresh and reload (no build)"
    assert result.backend.reasons == ["env values changed: SMTP_PASS"]


def test_a_secret_change_with_a_code_change_is_one_release():
    result = plan(["apps/backend/src/index.ts"], backend_env=["JWT_SECRET"])
    assert result.backend.action == "release"
    assert result.backend.reasons[-1] == "env values changed: JWT_SECRET"


@pytest.mark.parametrize(
    "paths", [[], ["README.md", "docs/deployment.md", ".github/workflows/ci.yml", "terraform/main.tf"]]
)
def test_nothing_relevant_needs_nothing(paths):
    result = plan(paths)
    assert actions(result) == ("none", False, "none")
    assert result.order == []
    assert result.summary == "nothing to deploy"
    assert result.ignored == sorted(paths)


def test_a_readme_inside_a_side_needs_nothing():
    assert actions(plan(["apps/backend/README.md", "apps/frontend/README.md"])) == ("none", False, "none")


def test_an_unknown_top_level_path_is_ignored_and_listed():
    result = plan(["scripts/seed-local.sh"])
    assert actions(result) == ("none", False, "none")
    assert result.ignored == ["scripts/seed-local.sh"]


# Renames and deletions.


def test_a_rename_within_the_backend_needs_the_backend():
    result = plan_deploy([Change("R", "apps/backend/src/new.ts", "apps/backend/src/old.ts")], [])
    assert actions(result) == ("release", False, "none")
    assert result.backend.reasons == [
        "R apps/backend/src/old.ts -> apps/backend/src/new.ts (backend, rule apps/backend/**)"
    ]


def test_a_file_moved_from_the_frontend_into_shared_code_needs_both():
    moved = [Change("R", "packages/types/src/price.ts", "apps/frontend/src/price.ts")]
    result = plan_deploy(moved, moved)
    assert actions(result) == ("release", False, "publish")


def test_a_file_moved_out_of_the_backend_into_docs_still_needs_the_backend():
    moved = [Change("R", "docs/old-handler.ts", "apps/backend/src/old-handler.ts")]
    result = plan_deploy(moved, moved)
    assert actions(result) == ("release", False, "none")


def test_a_deleted_migration_needs_migrations():
    deleted = [Change("D", "apps/backend/prisma/migrations/20250101000000_init/migration.sql")]
    assert actions(plan_deploy(deleted, deleted)) == ("release", True, "none")


def test_a_deleted_frontend_asset_needs_the_frontend():
    deleted = [Change("D", "apps/frontend/public/images/Roses.jpg")]
    assert actions(plan_deploy(deleted, deleted)) == ("none", False, "publish")


# Each side from its own live commit.


def test_each_side_is_judged_on_its_own_changes():
    # The frontend was published from an older commit and missed a frontend change the backend has already seen.
    backend = changes("README.md")
    frontend = changes("apps/frontend/src/App.jsx", "README.md")
    assert actions(plan_deploy(backend, frontend)) == ("none", False, "publish")


def test_a_side_with_nothing_live_is_deployed_in_full():
    result = plan_deploy(None, changes("README.md"), backend_unknown_reason="no backend commit is live")
    assert actions(result) == ("release", True, "none")
    assert result.backend.reasons == ["no backend commit is live"]


def test_many_changed_files_are_summarised():
    result = plan([f"apps/backend/src/file{i}.ts" for i in range(45)])
    assert len(result.backend.reasons) == 21
    assert result.backend.reasons[-1] == "and 25 more changed files"


# Rules.


def test_user_rules_go_first():
    rules = [{"glob": "apps/frontend/src/admin/**", "effect": "ignore"}, {"glob": "templates/**", "effect": "backend"}]
    assert actions(plan(["apps/frontend/src/admin/Panel.jsx"], rules=rules)) == ("none", False, "none")
    assert actions(plan(["templates/email/receipt.html"], rules=rules)) == ("release", False, "none")
    assert actions(plan(["apps/frontend/src/App.jsx"], rules=rules)) == ("none", False, "publish")


@pytest.mark.parametrize(
    ("rule", "message"),
    [({"glob": "a/**", "effect": "rebuild"}, "effect 'rebuild'"), ({"effect": "backend"}, "needs a glob")],
)
def test_bad_rules_are_refused(rule, message):
    with pytest.raises(PlanError, match=message):
        compile_rules([rule])


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("apps/backend/**", "apps/backend/src/a/b.ts", True),
        ("apps/backend/**", "apps/backend", True),
        ("apps/backend/**", "apps/backendx/a.ts", False),
        ("**/*.md", "README.md", True),
        ("**/*.md", "apps/backend/docs/x.md", True),
        ("*.md", "apps/README.md", False),
        ("tsconfig*.json", "tsconfig.base.json", True),
        ("tsconfig*.json", "apps/backend/tsconfig.json", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("a.b", "axb", False),
    ],
)
def test_globs(glob, path, matches):
    import re

    assert (re.match(glob_to_regex(glob), path) is not None) is matches


# git diff --name-status parsing.


def test_parse_nul_separated_output_with_renames_and_odd_names():
    text = "M\0apps/backend/src/index.ts\0R087\0apps/frontend/a b.jsx\0apps/frontend/tab\there.jsx\0D\0old.txt\0"
    assert parse_name_status(text) == [
        Change("M", "apps/backend/src/index.ts"),
        Change("R", "apps/frontend/tab\there.jsx", "apps/frontend/a b.jsx"),
        Change("D", "old.txt"),
    ]


def test_parse_line_output():
    text = "A\tapps/frontend/src/new.jsx\nC100\tapps/backend/a.ts\tapps/backend/b.ts\n"
    assert parse_name_status(text) == [
        Change("A", "apps/frontend/src/new.jsx"),
        Change("C", "apps/backend/b.ts", "apps/backend/a.ts"),
    ]


def test_parse_empty_output():
    assert parse_name_status("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [("X\0a\0", "Unexpected git status"), ("R100\0only-one\0", "both paths"), ("M\0", "without a path")],
)
def test_parse_refuses_malformed_output(text, message):
    with pytest.raises(PlanError, match=message):
        parse_name_status(text)


def test_a_side_left_out_is_not_planned():
    result = plan_deploy(changes("apps/backend/src/index.ts"), None, sides=["backend"])
    assert actions(result) == ("release", False, "none")
    assert result.frontend.reasons == ["frontend not planned"]
