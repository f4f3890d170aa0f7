"""module_utils/release_workdir.py: exporting a commit, the files tsc emits for a project, carrying a build output
into the next release without the output of deleted sources, and publishing a release with its marker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import (
    ReleaseError,
    carry_build_output,
    expected_outputs,
    export_commit,
    is_built,
    prune_outputs,
    publish,
    work_dir,
)


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def config(files, **options) -> dict:
    """What `tsc --showConfig` prints (paths relative to the project, as it writes them)."""
    return {"compilerOptions": {"outDir": "./dist", **options}, "files": [f"./{name}" for name in files]}


def test_expected_outputs_follow_root_dir_and_the_emit_options():
    files = ["src/index.ts", "src/routes/orders.ts", "src/types.d.ts", "src/view.tsx", "src/esm.mts", "src/cjs.cts"]
    assert expected_outputs(config(files, rootDir="./src")) == (
        "dist",
        {"dist/index.js", "dist/routes/orders.js", "dist/view.js", "dist/esm.mjs", "dist/cjs.cjs"},
    )
    _out, with_maps = expected_outputs(
        config(["src/index.ts"], rootDir="src", sourceMap=True, declaration=True, declarationMap=True)
    )
    assert with_maps == {"dist/index.js", "dist/index.js.map", "dist/index.d.ts", "dist/index.d.ts.map"}
    assert expected_outputs(config(["src/app.tsx"], rootDir="src", jsx="preserve"))[1] == {"dist/app.jsx"}
    assert expected_outputs(config(["src/a.js"], rootDir="src"))[1] == set()
    assert expected_outputs(config(["src/a.js"], rootDir="src", allowJs=True))[1] == {"dist/a.js"}


def test_without_a_root_dir_the_common_directory_of_the_sources_is_the_root():
    assert expected_outputs(config(["src/index.ts", "src/lib/a.ts", "src/types.d.ts"]))[1] == {
        "dist/index.js",
        "dist/lib/a.js",
    }
    assert expected_outputs(config(["src/index.ts", "scripts/seed.ts"]))[1] == {
        "dist/src/index.js",
        "dist/scripts/seed.js",
    }


def test_a_project_without_an_out_dir_has_no_output_directory_to_carry():
    assert expected_outputs({"compilerOptions": {}, "files": ["./src/index.ts"]}) is None


def test_prune_outputs_deletes_everything_but_what_is_kept_and_empty_directories(tmp_path):
    for name in ("dist/index.js", "dist/gone.js", "dist/old/route.js", "dist/.tsbuildinfo", "dist/assets/logo.png"):
        write(tmp_path / name)
    removed = prune_outputs(str(tmp_path), "dist", {"dist/index.js", "dist/.tsbuildinfo"})
    assert removed == ["dist/assets/logo.png", "dist/gone.js", "dist/old/route.js"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "dist",
        "dist/.tsbuildinfo",
        "dist/index.js",
    ]


def test_carry_build_output_copies_the_previous_output_without_what_deleted_sources_emitted(tmp_path):
    previous, work = tmp_path / "previous", tmp_path / "work"
    for name in ("dist/index.js", "dist/legacy.js", "dist/.tsbuildinfo"):
        write(previous / name, name)
    write(work / "src/index.ts")

    carried, note, stale = carry_build_output(
        str(previous), str(work), "dist/.tsbuildinfo", lambda: config(["src/index.ts", "src/new.ts"], rootDir="src")
    )

    assert (carried, note, stale) == (True, str(previous / "dist"), ["dist/legacy.js"])
    assert sorted(p.name for p in (work / "dist").iterdir()) == [".tsbuildinfo", "index.js"]
    # The previous release is left as it was.
    assert (previous / "dist/legacy.js").exists()


def test_nothing_is_carried_from_a_full_build_or_a_project_it_cannot_read(tmp_path):
    previous, work = tmp_path / "previous", tmp_path / "work"
    write(previous / "dist/index.js")

    def show():
        return config(["src/index.ts"], rootDir="src")

    assert carry_build_output(str(previous), str(work), "dist/.tsbuildinfo", show) == (
        False,
        f"{previous / 'dist/.tsbuildinfo'} does not exist",
        [],
    )
    write(previous / "dist/.tsbuildinfo")

    def fails():
        raise ReleaseError("error TS5083: Cannot read file 'tsconfig.json'")

    assert carry_build_output(str(previous), str(work), "dist/.tsbuildinfo", fails)[:2] == (
        False,
        "tsc --showConfig failed: error TS5083: Cannot read file 'tsconfig.json'",
    )
    assert carry_build_output(str(previous), str(work), "build/.tsbuildinfo", show)[0] is False
    assert not (work / "dist").exists()


def test_export_commit_publish_and_the_marker(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    write(repo / "apps/backend/package.json", "{}")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], check=True
    )
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    releases = tmp_path / "releases"
    releases.mkdir()
    work = Path(work_dir(str(releases), commit))
    write(work / "left-by-an-interrupted-build")

    export_commit(str(repo / ".git"), commit, str(work))

    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == [
        "apps",
        "apps/backend",
        "apps/backend/package.json",
    ]
    release = releases / commit
    assert not is_built(str(release))
    publish(str(work), str(release), commit, "main")
    assert is_built(str(release)) and not work.exists()
    assert json.loads((release / ".flora-release").read_text()) == {"commit": commit, "ref": "main"}
    with pytest.raises(ReleaseError, match="git archive 0000000 failed"):
        export_commit(str(repo / ".git"), "0000000", str(work))
