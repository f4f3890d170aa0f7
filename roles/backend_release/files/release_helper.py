# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the release tasks run on the host with the host's python3 (standard library only).

  release_helper.py describe <root package.json> <backend package.json> <pnpm on PATH or "">
      The two package.json files and the version of the pnpm on PATH, as one JSON object.
  release_helper.py deps-link <path_globs.py> <deps dir> <work dir> <repo> <commit> <patterns JSON> [<input> ...]
      Prints the key of the commit's dependencies. Exit 0: an install with that key is shared, and is now linked
      into the work directory; exit 3: there is none yet, install. <path_globs.py> is flora.deploy's
      plugins/module_utils/path_globs.py, which matches the patterns.
  release_helper.py deps-adopt <deps dir> <key> <work dir>
      Shares the work directory's fresh install as <deps dir>/<key>, so the next release with the same key links
      it instead of installing.

The key covers every file that decides what an install writes (the patterns: lockfile, package.json files,
Prisma schemas, ...) by its git blob, and the inputs given (install and generate commands, Node.js version,
architecture), so two releases with the same key install identical trees.

What is shared is pnpm's virtual store, node_modules/.pnpm: every package's files, and the database client the
generate command writes beside them. Each release keeps node_modules directories of its own (the links pnpm made
for each workspace package, its .bin scripts, pnpm's state files), copied from the release that installed, with
node_modules/.pnpm a link to the shared store. So a workspace package's links resolve to the release's own
packages. A virtual store with links out of it (a dependency on a workspace package) is not shared, except the
links pnpm hoists to workspace packages into .pnpm/node_modules, which nothing resolves through: those are dropped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

MARKER = ".flora-deps"
EXIT_NOT_SHARED = 3


def pnpm_version(pnpm: str) -> str:
    """The version of the pnpm at ``pnpm`` (<package>/bin/pnpm.cjs of npm's global install), '' when unknown."""
    if not pnpm:
        return ""
    package_json = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(pnpm))), "package.json")
    try:
        with open(package_json, encoding="utf-8") as handle:
            return str(json.load(handle)["version"])
    except (OSError, ValueError, KeyError):
        return ""


def describe(root_package: str, app_package: str, pnpm: str) -> dict:
    with open(root_package, encoding="utf-8") as root, open(app_package, encoding="utf-8") as app:
        return {"root": json.load(root), "backend": json.load(app), "pnpm": pnpm_version(pnpm)}


def dependency_key(listing: str, inputs: list[str]) -> str:
    """The key of an install: the files that decide it (``git ls-tree`` lines: mode, type, blob, path) and inputs."""
    digest = hashlib.sha256()
    for part in [*inputs, "--", *sorted(listing.splitlines())]:
        digest.update(part.encode("utf-8") + b"\n")
    return digest.hexdigest()[:32]


def load_globs(path: str):
    """flora.deploy's plugins/module_utils/path_globs.py, which the task hands over with this file."""
    spec = importlib.util.spec_from_file_location("flora_path_globs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dependency_files(repo: str, commit: str, patterns: list[str], globs) -> str:
    """The ``git ls-tree`` lines of the commit's files whose paths match one of ``patterns`` (``globs``: the
    path_globs module)."""
    listing = subprocess.run(
        ["git", f"--git-dir={repo}", "ls-tree", "-r", "--full-tree", commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    matchers = [re.compile(globs.glob_to_regex(pattern)) for pattern in patterns]
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
    deps_dir: str, work: str, repo: str, commit: str, patterns: list[str], inputs: list[str], globs
) -> tuple[str, bool]:
    """The key of the commit's dependencies, and whether a shared install for it was linked into ``work``."""
    key = dependency_key(dependency_files(repo, commit, patterns, globs), inputs)
    deps = os.path.join(deps_dir, key)
    marker = read_marker(deps)
    if marker is None:
        return key, False
    # A commit that carries a node_modules of its own keeps it, and installs.
    if any(os.path.lexists(os.path.join(work, tree)) for tree in marker["trees"]):
        return key, False
    link_install(deps, marker, work)
    return key, True


def deps_adopt(deps_dir: str, key: str, work: str) -> str:
    """Share the fresh install in ``work`` as ``deps_dir/key`` and link it back; says what it did."""
    trees = node_modules_trees(work)
    stores = [tree for tree in trees if os.path.isdir(os.path.join(work, tree, ".pnpm"))]
    if len(stores) != 1:
        return "kept the install in the release: no pnpm virtual store (node_modules/.pnpm) to share"
    store = os.path.join(work, stores[0], ".pnpm")
    leaving = links_leaving(store)
    kept = [path for path in leaving if not hoisted(path, store)]
    if kept:
        return f"kept the install in the release: {os.path.relpath(kept[0], work)} links out of the virtual store"
    deps = os.path.join(deps_dir, key)
    if os.path.lexists(deps):
        return f"kept the install in the release: {deps} exists"
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
    return f"shared the install as {deps}"


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "describe":
        print(json.dumps(describe(*args)))
        return 0
    if command == "deps-link":
        globs_file, deps_dir, work, repo, commit, patterns, *inputs = args
        key, linked = deps_link(deps_dir, work, repo, commit, json.loads(patterns), inputs, load_globs(globs_file))
        print(key)
        return 0 if linked else EXIT_NOT_SHARED
    if command == "deps-adopt":
        print(deps_adopt(*args))
        return 0
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
