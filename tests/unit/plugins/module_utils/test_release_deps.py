"""module_utils/release_deps.py: the dependency key, and sharing pnpm installs between releases, on real directory
trees with real symbolic links laid out as pnpm lays them out; module_utils/release_workdir.py's pnpm version."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils import release_deps as helper
from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import installed_pnpm_version


def link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def pnpm_install(work: Path) -> None:
    """What `pnpm install --filter backend...` leaves in a workspace whose backend uses a workspace package."""
    store = work / "node_modules" / ".pnpm"
    write(store / "express@4.21.2/node_modules/express/index.js", "module.exports = 'express';\n")
    link(store / "express@4.21.2/node_modules/depd", "../../depd@2.0.0/node_modules/depd")
    write(store / "depd@2.0.0/node_modules/depd/index.js", "module.exports = 'depd';\n")
    # The database client the generate command writes beside its package.
    write(store / "@prisma+client@6.19.3/node_modules/.prisma/client/index.js", "generated\n")
    link(store / "node_modules/depd", "../depd@2.0.0/node_modules/depd")
    # pnpm hoists the workspace's own packages here too.
    link(store / "node_modules/backend", "../../../apps/backend")
    link(store / "node_modules/@flora/shared", "../../../../packages/shared")
    write(work / "node_modules/.modules.yaml", "layoutVersion: 5\n")
    backend = work / "apps/backend/node_modules"
    link(backend / "express", "../../../node_modules/.pnpm/express@4.21.2/node_modules/express")
    link(backend / "@flora/shared", "../../../../packages/shared")
    write(backend / ".bin/tsc", "#!/bin/sh\n")


def export(work: Path, message: str) -> None:
    """A commit exported into a work directory: sources only."""
    write(work / "apps/backend/package.json", "{}\n")
    write(work / "packages/shared/index.js", f"module.exports = '{message}';\n")


def test_the_key_follows_the_dependency_files_and_the_inputs_only(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def commit(files: dict[str, str]) -> str:
        for name, text in files.items():
            write(repo / name, text)
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c"], check=True
        )
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()

    patterns = ["pnpm-lock.yaml", "**/package.json", "**/*.prisma"]

    def key(commit_id: str, inputs=("pnpm install", "node v22")) -> str:
        listing = helper.dependency_files(str(repo / ".git"), commit_id, patterns)
        return helper.dependency_key(listing, list(inputs))

    first = commit({"pnpm-lock.yaml": "a", "apps/backend/package.json": "{}", "apps/backend/src/index.ts": "1"})
    code_change = commit({"apps/backend/src/index.ts": "2"})
    schema_change = commit({"apps/backend/prisma/schema.prisma": "model A {}"})
    lock_change = commit({"pnpm-lock.yaml": "b"})

    assert key(first) == key(code_change)
    assert len({key(code_change), key(schema_change), key(lock_change)}) == 3
    assert key(first, ("pnpm install", "node v20")) != key(first)


def test_a_fresh_install_is_shared_and_the_next_release_links_it(tmp_path):
    deps_dir = tmp_path / "deps"
    first = tmp_path / "releases" / "first"
    export(first, "first")
    pnpm_install(first)

    adopted, said = helper.deps_adopt(str(deps_dir), "k1", str(first))

    shared = deps_dir / "k1"
    assert adopted and said == f"shared the install as {shared}"
    assert json.loads((shared / ".flora-deps").read_text()) == {
        "key": "k1",
        "trees": ["apps/backend/node_modules", "node_modules"],
        "store": "node_modules/.pnpm",
    }
    assert (first / "node_modules/.pnpm").is_symlink()
    assert os.readlink(first / "node_modules/.pnpm") == str(shared / ".pnpm")
    # The hoisted links to the workspace's packages would point into deps/: they are dropped.
    assert not os.path.lexists(shared / ".pnpm/node_modules/backend")
    assert not os.path.lexists(shared / ".pnpm/node_modules/@flora/shared")
    assert (shared / ".pnpm/node_modules/depd/index.js").read_text() == "module.exports = 'depd';\n"

    second = tmp_path / "releases" / "second"
    export(second, "second")
    marker = helper.read_marker(str(shared))
    helper.link_install(str(shared), marker, str(second))

    for release, message in ((first, "first"), (second, "second")):
        backend = release / "apps/backend/node_modules"
        assert (backend / "express/index.js").read_text() == "module.exports = 'express';\n"
        assert (backend / "express/../depd/index.js").read_text() == "module.exports = 'depd';\n"
        # A workspace package resolves to the release's own copy.
        assert (backend / "@flora/shared/index.js").read_text() == f"module.exports = '{message}';\n"
        assert (backend / ".bin/tsc").is_file() and not (backend / ".bin/tsc").is_symlink()
        assert (release / "node_modules/.modules.yaml").read_text() == "layoutVersion: 5\n"
        assert (release / "node_modules/.pnpm/@prisma+client@6.19.3/node_modules/.prisma/client/index.js").exists()
    # Both releases' files are the same files.
    assert (first / "apps/backend/node_modules/express/index.js").resolve() == (
        second / "apps/backend/node_modules/express/index.js"
    ).resolve()
    assert not list(deps_dir.glob(".*partial"))


def test_deps_link_links_only_an_install_with_the_same_key(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write(repo / "pnpm-lock.yaml", "a")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c"], check=True
    )
    deps_dir = tmp_path / "deps"
    args = (str(repo / ".git"), "HEAD", ["pnpm-lock.yaml"], ["pnpm install"])

    first = tmp_path / "first"
    export(first, "first")
    key, linked = helper.deps_link(str(deps_dir), str(first), *args)
    assert not linked
    pnpm_install(first)
    helper.deps_adopt(str(deps_dir), key, str(first))

    second = tmp_path / "second"
    export(second, "second")
    assert helper.deps_link(str(deps_dir), str(second), *args) == (key, True)
    assert (second / "apps/backend/node_modules/express/index.js").exists()

    other_inputs = tmp_path / "third"
    export(other_inputs, "third")
    assert helper.deps_link(str(deps_dir), str(other_inputs), *args[:3], ["pnpm install --prod"])[1] is False
    assert not (other_inputs / "node_modules").exists()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda work: link(
                work / "node_modules/.pnpm/express@4.21.2/node_modules/shared", "../../../../packages/shared"
            ),
            "node_modules/.pnpm/express@4.21.2/node_modules/shared links out of the virtual store",
        ),
        (
            lambda work: os.rename(work / "node_modules/.pnpm", work / "node_modules/.store"),
            "no pnpm virtual store (node_modules/.pnpm) to share",
        ),
    ],
)
def test_an_install_that_cannot_be_shared_stays_in_the_release(tmp_path, change, reason):
    work = tmp_path / "work"
    export(work, "work")
    pnpm_install(work)
    change(work)

    assert helper.deps_adopt(str(tmp_path / "deps"), "k1", str(work)) == (
        False,
        f"kept the install in the release: {reason}",
    )
    assert not (tmp_path / "deps" / "k1").exists()
    assert not (work / "node_modules" / ".pnpm").is_symlink()
    assert (work / "apps/backend/node_modules/express").is_symlink()


def test_an_existing_shared_install_is_never_replaced(tmp_path):
    (tmp_path / "deps" / "k1").mkdir(parents=True)
    work = tmp_path / "work"
    export(work, "work")
    pnpm_install(work)

    adopted, said = helper.deps_adopt(str(tmp_path / "deps"), "k1", str(work))
    assert not adopted and said.endswith("exists")
    assert not (work / "node_modules/.pnpm").is_symlink()
    assert list((tmp_path / "deps" / "k1").iterdir()) == []


def test_the_pnpm_version_is_read_from_the_package_of_the_pnpm_on_path(tmp_path):
    write(tmp_path / "lib/node_modules/pnpm/package.json", json.dumps({"version": "10.34.9"}))
    write(tmp_path / "lib/node_modules/pnpm/bin/real.cjs")
    link(tmp_path / "bin/pnpm", "../lib/node_modules/pnpm/bin/real.cjs")

    assert installed_pnpm_version(str(tmp_path / "bin/pnpm")) == "10.34.9"
    assert installed_pnpm_version(None) == ""
    (tmp_path / "lib/node_modules/pnpm/package.json").write_text("{}")
    assert installed_pnpm_version(str(tmp_path / "bin/pnpm")) == ""


def test_same_dependencies_by_shared_install_or_by_key(tmp_path):
    deps_dir = tmp_path / "deps"
    previous = tmp_path / "previous"
    export(previous, "previous")
    pnpm_install(previous)
    helper.write_key(str(previous), "k1")
    helper.deps_adopt(str(deps_dir), "k1", str(previous))

    linked = tmp_path / "linked"
    export(linked, "linked")
    helper.link_install(str(deps_dir / "k1"), helper.read_marker(str(deps_dir / "k1")), str(linked))
    assert helper.same_dependencies(str(linked), str(previous), "")

    # An install that could not be shared is made again in each release: the same key, the same dependencies.
    kept = tmp_path / "kept"
    export(kept, "kept")
    pnpm_install(kept)
    helper.write_key(str(kept), "k2")
    unshared = tmp_path / "unshared"
    export(unshared, "unshared")
    assert helper.read_key(str(kept)) == "k2"
    assert helper.same_dependencies(str(unshared), str(kept), "k2")
    assert not helper.same_dependencies(str(unshared), str(kept), "k3")
    assert not helper.same_dependencies(str(unshared), str(kept), "")
    # A release from before the key was kept: not the same, so a full build.
    (kept / helper.KEY_FILE).unlink()
    assert helper.read_key(str(kept)) == ""
    assert not helper.same_dependencies(str(unshared), str(kept), "k2")
