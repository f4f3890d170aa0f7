"""flora.deploy.deploy_plan through ansible-playbook on real git repositories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

PLAN = "deploy_plan/plan.yml"


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str | None]) -> str:
    """Write (or with None delete) files and commit them; returns the commit."""
    for name, content in files.items():
        path = repo / name
        if content is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        git(repo, "add", name)
    git(repo, "-c", "user.name=Flora", "-c", "user.email=flora@example.com", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "Flora"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(
        repo,
        "app",
        {
            "package.json": "{}",
            "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
            "README.md": "# Flora\n",
            "apps/backend/src/index.ts": "export {};\n",
            "apps/backend/prisma/schema.prisma": "model Flower { id Int @id }\n",
            "apps/frontend/src/App.jsx": "export default () => null;\n",
            "apps/frontend/src/Old.jsx": "export default () => null;\n",
        },
    )
    return repo


@pytest.fixture
def plan(run_playbook, tmp_path):
    def run(**plan_args) -> dict:
        result = run_playbook(PLAN, {"plan_args": plan_args})
        assert result.rc == 0, result
        return json.loads((tmp_path / "result.json").read_text())

    return run


def test_a_frontend_change_plans_the_frontend_only(repo, plan):
    live = git(repo, "rev-parse", "HEAD")
    target = commit(repo, "new copy", {"apps/frontend/src/App.jsx": "export default () => 'Flora';\n"})
    result = plan(repo=str(repo), backend_live=[live], frontend_live=live)
    assert result["changed"] is False
    assert result["target_commit"] == target
    assert (result["backend"]["action"], result["frontend"]["action"]) == ("none", "publish")
    assert result["frontend"]["reasons"] == ["M apps/frontend/src/App.jsx (frontend, rule apps/frontend/**)"]
    assert result["summary"] == "frontend build and publish"


def test_a_schema_change_plans_a_backend_release_with_migrations(repo, plan):
    live = git(repo, "rev-parse", "HEAD")
    commit(repo, "orders", {"apps/backend/prisma/schema.prisma": "model Order { id Int @id }\n"})
    result = plan(repo=str(repo), backend_live=[live], frontend_live=live)
    assert result["backend"] == {
        "action": "release",
        "migrations": True,
        "reasons": ["M apps/backend/prisma/schema.prisma (migrations, rule apps/backend/prisma/schema.prisma)"],
    }
    assert result["frontend"]["action"] == "none"


def test_renames_and_deletions_count_for_the_paths_they_touch(repo, plan):
    live = git(repo, "rev-parse", "HEAD")
    (repo / "packages/ui").mkdir(parents=True)
    git(repo, "mv", "apps/frontend/src/Old.jsx", "packages/ui/Old.jsx")
    commit(repo, "move and delete", {"apps/backend/src/index.ts": None})
    result = plan(repo=str(repo), backend_live=[live], frontend_live=live)
    assert result["order"] == ["backend", "frontend"]
    assert "D apps/backend/src/index.ts (backend, rule apps/backend/**)" in result["backend"]["reasons"]
    assert result["frontend"]["reasons"] == [
        "R apps/frontend/src/Old.jsx -> packages/ui/Old.jsx (frontend, rule apps/frontend/**)"
    ]


def test_docs_only_plans_nothing_and_secrets_only_refresh_the_backend(repo, plan):
    live = git(repo, "rev-parse", "HEAD")
    commit(repo, "docs", {"README.md": "# Flora marketplace\n"})
    result = plan(repo=str(repo), backend_live=[live, live], frontend_live=live)
    assert result["order"] == [] and result["ignored"] == ["README.md"]
    result = plan(repo=str(repo), backend_live=[live], frontend_live=live, backend_env_changed=["SMTP_PASS"])
    assert result["backend"]["action"] == "refresh"
    assert result["summary"] == "backend env refresh and reload (no build)"


def test_hosts_on_different_commits_are_judged_from_each(repo, plan):
    first = git(repo, "rev-parse", "HEAD")
    second = commit(repo, "api", {"apps/backend/src/index.ts": "export const v = 2;\n"})
    commit(repo, "docs", {"README.md": "# Flora 3\n"})
    # One host already runs the API change, the other stopped before it: the fleet still needs the backend.
    result = plan(repo=str(repo), backend_live=[second, first], frontend_live=second)
    assert result["backend"]["action"] == "release"
    assert result["frontend"]["action"] == "none"
    assert plan(repo=str(repo), backend_live=[second, ""], frontend_live=second)["backend"]["reasons"] == [
        "no backend commit is live on some hosts"
    ]


def test_nothing_live_or_a_commit_missing_from_a_shallow_clone_deploys_in_full(repo, plan, tmp_path):
    first = git(repo, "rev-parse", "HEAD")
    commit(repo, "docs", {"README.md": "# Flora 2\n"})
    result = plan(repo=str(repo), backend_live=[""], frontend_live="")
    assert (result["backend"]["action"], result["frontend"]["action"]) == ("release", "publish")
    assert result["frontend"]["reasons"] == ["no frontend commit is live"]

    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    result = plan(repo=str(shallow), backend_live=[first], frontend_live=first)
    assert result["backend"]["action"] == "release"
    assert "is not in" in result["backend"]["reasons"][0] and "shallow clone" in result["backend"]["reasons"][0]


def test_user_rules_decide_first(repo, plan):
    live = git(repo, "rev-parse", "HEAD")
    commit(repo, "templates", {"templates/email/receipt.html": "<p>Thanks</p>\n"})
    assert plan(repo=str(repo), backend_live=[live], frontend_live=live)["order"] == []
    result = plan(
        repo=str(repo),
        backend_live=[live],
        frontend_live=live,
        rules=[{"glob": "templates/**", "effect": "backend"}],
    )
    assert result["backend"]["action"] == "release"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"target": "no-such-branch"}, "Target no-such-branch is not a commit in"),
        ({"rules": [{"glob": "x/**", "effect": "rebuild"}]}, "value of effect must be one of"),
    ],
)
def test_bad_input_is_named(repo, plan, args, message):
    result = plan(repo=str(repo), backend_live=[""], frontend_live="", **args)
    assert result["failed"] is True
    assert message in result["msg"]


def test_a_directory_that_is_not_a_repository_is_named(plan, tmp_path):
    result = plan(repo=str(tmp_path), frontend_live="")
    assert result["failed"] is True
    assert f"{tmp_path} is not a git repository" in result["msg"]
