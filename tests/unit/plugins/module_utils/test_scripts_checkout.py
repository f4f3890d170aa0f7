"""module_utils/scripts_checkout.py on real git checkouts laid out as the app's scripts leave them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import is_built, write_marker
from ansible_collections.flora.deploy.plugins.module_utils.scripts_checkout import (
    CheckoutError,
    destination,
    find_checkout,
    link_env_file,
    move_checkout,
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> Path:
    """/home/ubuntu/Flora as the user-data leaves it: a checkout, built in place, with a heredoc .env."""
    root = tmp_path / "Flora"
    (root / "apps/backend/src").mkdir(parents=True)
    (root / "apps/backend/src/index.ts").write_text("console.log('flora')\n")
    (root / "package.json").write_text("{}\n")
    (root / ".gitignore").write_text("node_modules/\ndist/\n.env\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "Flora")
    (root / "node_modules").mkdir()
    (root / "apps/backend/dist").mkdir()
    (root / "apps/backend/.env").write_text("STRIPE_SECRET_KEY=sk_live_x\n")
    os.chmod(root / "apps/backend/.env", 0o644)
    return root


def test_a_checkout_is_found_with_its_commit_and_a_release_layout_is_not(checkout, tmp_path):
    found = find_checkout(str(checkout))
    assert found is not None and found.commit == git(checkout, "rev-parse", "HEAD")
    # Untracked files (the install, the build, the .env) are what a built checkout has: no reason to refuse.
    assert find_checkout(str(tmp_path / "nothing-here")) is None


def test_local_changes_or_a_clashing_top_level_entry_refuse_adoption(checkout):
    (checkout / "apps/backend/src/index.ts").write_text("console.log('patched on the host')\n")
    with pytest.raises(CheckoutError, match=r"local changes to apps/backend/src/index.ts: commit or stash them"):
        find_checkout(str(checkout))
    git(checkout, "checkout", "--", ".")
    (checkout / "shared").mkdir()
    (checkout / "shared/types.ts").write_text("export type Order = {};\n")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "Shared types")
    with pytest.raises(CheckoutError, match=r"tracks shared, which the release layout needs at its top"):
        find_checkout(str(checkout))


def test_adoption_moves_the_checkout_into_its_release_and_leaves_the_layout(checkout):
    commit = find_checkout(str(checkout)).commit
    # What the bootstrap put beside the checkout before the switch.
    for layout in ("releases/" + "f" * 40, "shared", "repo.git", ".cache/node-compile-cache"):
        (checkout / layout).mkdir(parents=True)
    (checkout / "shared/backend.env").write_text("STRIPE_SECRET_KEY='sk_live_x'\n")
    (checkout / "current").symlink_to(checkout / "releases" / ("f" * 40))
    target = destination(str(checkout / "releases"), commit, live="f" * 40)

    moved = move_checkout(str(checkout), target, keep=[])
    kept = link_env_file(os.path.join(target, "apps/backend"), str(checkout / "shared/backend.env"))
    write_marker(target, commit, "scripts checkout")

    assert target == str(checkout / "releases" / commit)
    assert moved == [".git", ".gitignore", "apps", "node_modules", "package.json"]
    assert sorted(os.listdir(checkout)) == [".cache", "current", "releases", "repo.git", "shared"]
    backend = Path(target) / "apps/backend"
    assert os.readlink(backend / ".env") == str(checkout / "shared/backend.env")
    assert kept and (backend / ".env.from-scripts").read_text() == "STRIPE_SECRET_KEY=sk_live_x\n"
    assert oct((backend / ".env.from-scripts").stat().st_mode & 0o777) == "0o600"
    assert is_built(target) and json.loads((Path(target) / ".flora-release").read_text())["commit"] == commit
    # Adopted: the app directory holds no checkout any more.
    assert find_checkout(str(checkout)) is None


def test_a_checkout_of_the_live_commit_is_kept_but_is_no_release(tmp_path):
    releases = str(tmp_path / "releases")
    assert destination(releases, "a" * 40, live="a" * 40) == f"{releases}/.scripts-checkout-{'a' * 40}"
    assert destination(releases, "a" * 40, live="b" * 40) == f"{releases}/{'a' * 40}"
