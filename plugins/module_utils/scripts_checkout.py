# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host the app's own scripts deployed, for flora.deploy.scripts_checkout: a plain git checkout in the app
directory, built in place, with a heredoc .env beside the backend and PM2 running it in fork mode.

The bootstrap turns it into the release layout without losing it: the release of the target commit is built
beside the checkout (releases/, shared/ and repo.git appear in the app directory, next to the checkout's own
files), and once the scripts' process is stopped, the checkout's files move into releases/<its commit>, a release
to roll back to. When the checkout is at the commit the bootstrap deploys, there is nothing to roll back to: it
moves to releases/.scripts-checkout-<commit>, kept as it was.
"""

from __future__ import annotations

import os
import subprocess
import typing as t
from dataclasses import dataclass

# What the release layout puts in the app directory: the checkout must have none of these at its top level.
LAYOUT = (
    "repo.git",
    "releases",
    "shared",
    "deps",
    ".pnpm-store",
    "current",
    "current.next",
    "releases.json",
    ".deploy.lock",
    ".cache",
)
SCRIPTS_ENV = ".env.from-scripts"


class CheckoutError(Exception):
    pass


@dataclass(frozen=True)
class Checkout:
    root: str
    commit: str


def git(root: str, *args: str) -> str:
    """git in the checkout, whoever owns it (the module runs as root)."""
    done = subprocess.run(
        ["git", "-c", f"safe.directory={root}", "-C", root, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CheckoutError(f"git {' '.join(args)} in {root} failed: {done.stderr.strip()}")
    return done.stdout


def find_checkout(root: str) -> Checkout | None:
    """The scripts' checkout in ``root``; None when there is none (or it was adopted already).

    Raises CheckoutError when it cannot be adopted as it is: local changes to its tracked files (the commit would
    not say what it runs), or a tracked top-level entry the release layout needs.
    """
    if not os.path.isdir(os.path.join(root, ".git")):
        return None
    commit = git(root, "rev-parse", "--verify", "HEAD").strip()
    changed = [line[3:] for line in git(root, "status", "--porcelain", "--untracked-files=no").splitlines()]
    if changed:
        raise CheckoutError(
            f"{root} is a checkout with local changes to {', '.join(changed[:10])}: commit or stash them "
            "(git stash), so that the release it becomes is its commit, then bootstrap again. Nothing was changed."
        )
    tracked = set(git(root, "ls-tree", "--name-only", "HEAD").split())
    clashes = sorted(tracked & set(LAYOUT))
    if clashes:
        raise CheckoutError(
            f"The checkout in {root} tracks {', '.join(clashes)}, which the release layout needs at its top: move "
            "the checkout elsewhere by hand, then bootstrap. Nothing was changed."
        )
    return Checkout(root=root, commit=commit)


def destination(releases_dir: str, commit: str, live: str) -> str:
    """Where the checkout goes: its release, or, when it is the live commit's, a directory that is no release."""
    name = commit if commit != live else f".scripts-checkout-{commit}"
    return os.path.join(releases_dir, name)


def move_checkout(root: str, target: str, keep: t.Iterable[str]) -> list[str]:
    """Move every entry of ``root`` but the layout's and ``keep`` into ``target``, a directory owned as ``root``
    is (the app user, who runs the releases); returns the names moved."""
    os.makedirs(target, mode=0o750, exist_ok=True)
    owner = os.stat(root)
    os.chown(target, owner.st_uid, owner.st_gid)
    staying = set(LAYOUT) | set(keep)
    moved = []
    for name in sorted(os.listdir(root)):
        if name in staying:
            continue
        os.rename(os.path.join(root, name), os.path.join(target, name))
        moved.append(name)
    return moved


def link_env_file(app: str, env_file: str) -> bool:
    """The backend's .env as a link to the shared env file; the scripts' own file is kept beside it, private.
    Returns whether the scripts' file was kept."""
    env = os.path.join(app, ".env")
    kept = False
    if os.path.lexists(env) and not os.path.islink(env):
        os.chmod(env, 0o600)
        os.rename(env, os.path.join(app, SCRIPTS_ENV))
        kept = True
    elif os.path.islink(env):
        os.unlink(env)
    os.symlink(env_file, env)
    return kept
