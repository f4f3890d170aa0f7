# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Releases with the same dependencies share one install, for flora.deploy.release_dir.

The key of a release's dependencies covers every file that decides what an install writes (the patterns:
lockfile, package.json files, Prisma schemas, ...) by its git blob, and the inputs given (install and generate
commands, Node.js version, architecture), so two releases with the same key install identical trees.

What is shared is pnpm's virtual store, node_modules/.pnpm: every package's files, and the database client the
generate command writes beside them. Each release keeps node_modules directories of its own (the links pnpm made
for each workspace package, its .bin scripts, pnpm's state files), copied from the release that installed, with
node_modules/.pnpm a link to the shared store. So a workspace package's links resolve to the release's own
packages. A virtual store with links out of it (a dependency on a workspace package) is not shared, except the
links pnpm hoists to workspace packages into .pnpm/node_modules, which nothing resolves through: those are dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess

from ansible_collections.flora.deploy.plugins.module_utils.path_globs import glob_to_regex

# The marker of a shared install; "store" names the link, relative to a release directory, that points at the
# shared virtual store "<deps_dir>/<key>/.pnpm".
MARKER = ".flora-deps"
# In a release directory: the key of its dependencies, shared or installed in the release.
KEY_FILE = ".flora-deps-key"


def dependency_key(listing: str, inputs: list[str]) -> str:
    """The key of an install: the files that decide it (``git ls-tree`` lines: mode, type, blob, path) and inputs."""
    digest = hashlib.sha256()
    for part in [*inputs, "--", *sorted(listing.splitlines())]:
        digest.update(part.encode("utf-8") + b"\n")
    return digest.hexdigest()[:32]


def dependency_files(repo: str, commit: str, patterns: list[str]) -> str:
    """The ``git ls-tree`` lines of the commit's files whose paths match one of ``patterns``."""
    listing = subprocess.run(
        ["git", f"--git-dir={repo}", "ls-tree", "-r", "--full-tree", commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    matchers = [re.compile(glob_to_regex(pattern)) for pattern in patterns]
    return "".join(
        line + "\n"
        for line in listing.splitlines()
        if any(matcher.match(line.split("\t", 1)[-1]) for matcher in matchers)
    )


def node_modules_trees(work: str) -> list[str]:
    """The work directory's node_modules directories, relative to it, none inside another."""
    trees = []
    for top, dirs, _files in os.walk(work):
        if "node_modules" in dirs and not os.path.islink(os.path.join(top, "node_modules")):
            trees.append(os.path.relpath(os.path.join(top, "node_modules"), work))
        dirs[:] = [name for name in dirs if name not in ("node_modules", ".git")]
    return sorted(trees)


def link_target(path: str) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))


def links_leaving(root: str) -> list[str]:
    """Symbolic links under ``root`` that point outside it."""
    leaving = []
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            if os.path.islink(path):
                target = link_target(path)
                if target != root and not target.startswith(root + os.sep):
                    leaving.append(path)
    return leaving


def hoisted(path: str, store: str) -> bool:
    """Whether ``path`` is an entry of pnpm's hoisted directory, <store>/node_modules/[@scope/]name."""
    parent = os.path.dirname(path)
    if os.path.basename(parent).startswith("@"):
        parent = os.path.dirname(parent)
    return parent == os.path.join(store, "node_modules")


def read_marker(deps: str) -> dict | None:
    try:
        with open(os.path.join(deps, MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def link_install(deps: str, marker: dict, work: str) -> None:
    """The release's own node_modules directories, and its virtual store linked to the shared one."""
    for tree in marker["trees"]:
        shutil.copytree(os.path.join(deps, "release", tree), os.path.join(work, tree), symlinks=True)
    os.symlink(os.path.join(deps, ".pnpm"), os.path.join(work, marker["store"]))


def deps_link(
    deps_dir: str, work: str, repo: str, commit: str, patterns: list[str], inputs: list[str]
) -> tuple[str, bool]:
    """The key of the commit's dependencies, and whether a shared install for it was linked into ``work``."""
    key = dependency_key(dependency_files(repo, commit, patterns), inputs)
    deps = os.path.join(deps_dir, key)
    marker = read_marker(deps)
    if marker is None:
        return key, False
    # A commit that carries a node_modules of its own keeps it, and installs.
    if any(os.path.lexists(os.path.join(work, tree)) for tree in marker["trees"]):
        return key, False
    link_install(deps, marker, work)
    return key, True


def deps_adopt(deps_dir: str, key: str, work: str) -> tuple[bool, str]:
    """Share the fresh install in ``work`` as ``deps_dir/key`` and link it back: (whether it did, what it did)."""
    trees = node_modules_trees(work)
    stores = [tree for tree in trees if os.path.isdir(os.path.join(work, tree, ".pnpm"))]
    if len(stores) != 1:
        return False, "kept the install in the release: no pnpm virtual store (node_modules/.pnpm) to share"
    store = os.path.join(work, stores[0], ".pnpm")
    leaving = links_leaving(store)
    kept = [path for path in leaving if not hoisted(path, store)]
    if kept:
        return (
            False,
            f"kept the install in the release: {os.path.relpath(kept[0], work)} links out of the virtual store",
        )
    deps = os.path.join(deps_dir, key)
    if os.path.lexists(deps):
        return False, f"kept the install in the release: {deps} exists"
    os.makedirs(deps_dir, mode=0o750, exist_ok=True)
    partial = os.path.join(deps_dir, f".{key}.partial")
    subprocess.run(["rm", "-rf", "--", partial], check=True)
    os.mkdir(partial, 0o750)
    for path in leaving:
        os.unlink(path)
    os.rename(store, os.path.join(partial, ".pnpm"))
    for tree in trees:
        shutil.copytree(os.path.join(work, tree), os.path.join(partial, "release", tree), symlinks=True)
    marker = {"key": key, "trees": trees, "store": os.path.join(stores[0], ".pnpm")}
    with open(os.path.join(partial, MARKER), "w", encoding="utf-8") as handle:
        json.dump(marker, handle)
    os.rename(partial, deps)
    os.symlink(os.path.join(deps, ".pnpm"), store)
    return True, f"shared the install as {deps}"


def write_key(work: str, key: str) -> None:
    with open(os.path.join(work, KEY_FILE), "w", encoding="utf-8") as handle:
        handle.write(key + "\n")


def read_key(release: str) -> str:
    try:
        with open(os.path.join(release, KEY_FILE), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def same_install(one: str, other: str) -> bool:
    """Whether two releases' virtual stores are the same shared install."""
    first, second = (os.path.join(release, "node_modules", ".pnpm") for release in (one, other))
    return os.path.islink(first) and os.path.realpath(first) == os.path.realpath(second)


def same_dependencies(work: str, previous: str, key: str) -> bool:
    """Whether the work directory gets the dependencies the previous release has: the same shared install, or
    installs of the same key (an install that could not be shared is made again in each release, identically)."""
    return same_install(work, previous) or (bool(key) and read_key(previous) == key)
