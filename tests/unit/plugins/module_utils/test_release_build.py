"""module_utils/release_build.py: a release built from a commit in one call, on a real repository and real
directories; the app's commands (install, generate, build) are a stand-in that writes what they would write."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.release_build import (
    BUILD,
    INSTALL,
    UNPACK,
    ReleaseBuild,
    StepFailed,
    pnpm_mismatch,
    script_command,
)
from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import is_built, work_dir

INSTALL_COMMAND = "pnpm install --frozen-lockfile --filter backend..."
BUILD_COMMAND = "pnpm --filter backend build"
# The backend's build script, as release_dir runs it without a build command: in the backend's directory.
SCRIPT_BUILDS = ("node --run build", "pnpm run build")
GENERATE_COMMAND = "pnpm --filter backend db:generate"


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class Repo:
    def __init__(self, path: Path):
        self.path = path
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)

    def commit(self, files: dict[str, str]) -> str:
        for name, text in files.items():
            write(self.path / name, text)
        subprocess.run(["git", "-C", str(self.path), "add", "-A"], check=True)
        subprocess.run(
            ["git", "-C", str(self.path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
            check=True,
        )
        return subprocess.run(
            ["git", "-C", str(self.path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()


class App:
    """The app's commands as they behave: the install writes node_modules, the build writes dist/."""

    def __init__(self, fail: dict[str, tuple[int, str, str]] | None = None):
        self.ran: list[tuple[str, str]] = []
        self.built_with_store: list[str] = []
        self.fail = fail or {}

    def __call__(self, command: str, cwd: str) -> tuple[int, str, str]:
        self.ran.append((command, cwd))
        work = Path(cwd)
        if command == BUILD_COMMAND:
            self.built_with_store.append(os.path.realpath(work / "node_modules/.pnpm"))
        if command in self.fail:
            return self.fail[command]
        if command == INSTALL_COMMAND:
            write(work / "node_modules/.pnpm/express@4.21.2/node_modules/express/index.js", "express\n")
            write(work / "node_modules/.modules.yaml", "layoutVersion: 5\n")
            (work / "apps/backend/node_modules").mkdir(parents=True)
            (work / "apps/backend/node_modules/express").symlink_to(
                "../../../node_modules/.pnpm/express@4.21.2/node_modules/express"
            )
            return 0, "Packages: +1\nDone\n", ""
        if command == BUILD_COMMAND:
            source = (work / "apps/backend/src/index.ts").read_text()
            write(work / "apps/backend/dist/index.js", source)
            return 0, "> backend@1.0.0 build\n> tsc\n", ""
        if command.startswith(SCRIPT_BUILDS):
            write(work / "dist/index.js", (work / "src/index.ts").read_text())
            return 0, "", ""
        return 0, "", ""


def options(tmp_path: Path, repo: Repo, commit: str, **overrides) -> dict:
    return {
        "repo": str(repo.path / ".git"),
        "commit": commit,
        "ref": "main",
        "releases_dir": str(tmp_path / "releases"),
        "app_dir": "apps/backend",
        "env_file": str(tmp_path / "shared/backend.env"),
        "share_deps": True,
        "deps_dir": str(tmp_path / "deps"),
        "deps_files": ["pnpm-lock.yaml", "**/package.json"],
        "install_command": INSTALL_COMMAND,
        "generate_command": GENERATE_COMMAND,
        "generate_script": "db:generate",
        "build_command": BUILD_COMMAND,
        "build_script": "build",
        "build_args": [],
        "carry_build_from": None,
        "build_info": None,
        "check_pnpm": True,
        "pnpm_version": "",
        **overrides,
    }


def build_release(params: dict, app: App, pnpm_version: str = "10.34.9") -> tuple[ReleaseBuild, dict]:
    """The whole build, as flora.deploy.release_dir runs it, with ``pnpm_version`` the pnpm on PATH."""
    (Path(params["releases_dir"])).mkdir(exist_ok=True)
    build = ReleaseBuild(
        params,
        work_dir(params["releases_dir"], params["commit"]),
        app,
        node_version=lambda: "v24.21.0",
        show_config=lambda app_dir, tsc_app: {},
    )
    return build, build.build(pnpm_version)


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path / "repo")


def app_files(version: str, scripts: dict | None = None) -> dict[str, str]:
    return {
        "package.json": json.dumps({"name": "flora", "packageManager": "pnpm@10.34.9"}),
        "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
        "apps/backend/package.json": json.dumps({"name": "backend", "scripts": scripts or {"build": "tsc"}}),
        "apps/backend/src/index.ts": f"console.log('{version}');\n",
    }


def test_a_fresh_install_is_installed_shared_built_and_published(tmp_path, repo):
    commit = repo.commit(app_files("v1", {"build": "tsc", "db:generate": "prisma generate"}))
    app = App()

    build, result = build_release(options(tmp_path, repo, commit), app)

    release = tmp_path / "releases" / commit
    work = work_dir(str(tmp_path / "releases"), commit)
    assert app.ran == [(INSTALL_COMMAND, work), (GENERATE_COMMAND, work), (BUILD_COMMAND, work)]
    assert [step["name"] for step in build.steps] == [UNPACK, INSTALL, INSTALL, BUILD]
    timed = dict(build.steps[3])
    assert isinstance(timed.pop("seconds"), float)
    assert timed == {"name": BUILD, "cmd": BUILD_COMMAND, "rc": 0}
    assert result["installed"] and not result["deps_linked"]
    assert result["package_manager"] == "pnpm@10.34.9"
    assert result["shared"] == f"shared the install as {tmp_path}/deps/{result['deps_key']}"
    assert is_built(str(release)) and not Path(work).exists()
    assert (release / "apps/backend/dist/index.js").read_text() == "console.log('v1');\n"
    assert (release / "apps/backend/.env").readlink() == tmp_path / "shared/backend.env"
    assert (release / "apps/backend/node_modules/express/index.js").read_text() == "express\n"
    # The build ran with the shared install in place, where the next releases will find the same packages.
    assert app.built_with_store == [str(tmp_path / "deps" / result["deps_key"] / ".pnpm")]


def test_the_next_commit_with_the_same_dependencies_links_the_install_and_only_builds(tmp_path, repo):
    first = repo.commit(app_files("v1"))
    build_release(options(tmp_path, repo, first), App())
    second = repo.commit({"apps/backend/src/index.ts": "console.log('v2');\n"})
    app = App()

    build, result = build_release(options(tmp_path, repo, second), app)

    assert app.ran == [(BUILD_COMMAND, work_dir(str(tmp_path / "releases"), second))]
    assert [step["name"] for step in build.steps] == [UNPACK, BUILD]
    assert result["deps_linked"] and not result["installed"] and "shared" not in result
    assert (tmp_path / "releases" / second / "apps/backend/node_modules/express/index.js").read_text() == "express\n"
    # Without the db:generate script, the generate command never runs.
    assert result["generate_command"] == ""


def test_a_failed_build_names_its_step_leaves_no_release_and_withdraws_its_install(tmp_path, repo):
    commit = repo.commit(app_files("v1"))
    tsc_error = "src/index.ts(15,36): error TS1005: ',' expected.\n"
    app = App(fail={BUILD_COMMAND: (2, tsc_error, "ELIFECYCLE Command failed with exit code 2.\n")})

    with pytest.raises(StepFailed) as failed:
        build_release(options(tmp_path, repo, commit), app)

    work = work_dir(str(tmp_path / "releases"), commit)
    assert failed.value.step == BUILD
    assert str(failed.value) == f"Build failed: `{BUILD_COMMAND}` exited with 2 in {work}"
    assert failed.value.details == {
        "cmd": BUILD_COMMAND,
        "rc": 2,
        "stdout": tsc_error,
        "stderr": "ELIFECYCLE Command failed with exit code 2.\n",
    }
    assert not (tmp_path / "releases" / commit).exists()
    # The build ran against the shared install, which it then withdrew: only installs whose build succeeded are
    # shared, and the next commit with the same dependencies installs again.
    assert len(app.built_with_store) == 1 and app.built_with_store[0].startswith(str(tmp_path / "deps") + "/")
    assert sorted(path.name for path in (tmp_path / "deps").iterdir()) == []
    fixed = repo.commit({"apps/backend/src/index.ts": "console.log('fixed');\n"})
    app = App()
    _build, result = build_release(options(tmp_path, repo, fixed), app)
    assert not result["deps_linked"] and [command for command, _cwd in app.ran] == [INSTALL_COMMAND, BUILD_COMMAND]
    assert result["shared"] == f"shared the install as {tmp_path}/deps/{result['deps_key']}"


def test_a_failed_install_stops_before_the_build(tmp_path, repo):
    commit = repo.commit(app_files("v1"))
    app = App(fail={INSTALL_COMMAND: (1, "", "ERR_PNPM_OUTDATED_LOCKFILE Cannot install with frozen-lockfile\n")})

    with pytest.raises(StepFailed) as failed:
        build_release(options(tmp_path, repo, commit), app)

    assert failed.value.step == INSTALL
    assert [command for command, _cwd in app.ran] == [INSTALL_COMMAND]
    assert not (tmp_path / "releases" / commit).exists()


def test_an_unknown_commit_fails_in_the_unpack_step(tmp_path, repo):
    repo.commit(app_files("v1"))
    app = App()

    with pytest.raises(StepFailed) as failed:
        build_release(options(tmp_path, repo, "0" * 40), app)

    assert failed.value.step == UNPACK
    assert str(failed.value).startswith(f"git archive {'0' * 40} failed")
    assert app.ran == []


def test_a_fresh_install_with_another_pnpm_stops_after_unpacking_until_told_not_to_check(tmp_path, repo):
    commit = repo.commit(app_files("v1"))
    app = App()

    build, stopped = build_release(options(tmp_path, repo, commit), app, pnpm_version="9.15.0")

    work = Path(work_dir(str(tmp_path / "releases"), commit))
    assert stopped["pnpm_required"] and stopped["package_manager"] == "pnpm@10.34.9"
    assert stopped["pnpm_version"] == "9.15.0" and "installed" not in stopped
    assert app.ran == [] and [step["name"] for step in build.steps] == [UNPACK]
    assert (work / "apps/backend/src/index.ts").is_file() and not (tmp_path / "releases" / commit).exists()

    # Once the caller installed that pnpm, it calls again without the check.
    _build, built = build_release(options(tmp_path, repo, commit, check_pnpm=False), app, pnpm_version="9.15.0")

    assert not built["pnpm_required"] and built["installed"]
    assert [command for command, _cwd in app.ran] == [INSTALL_COMMAND, BUILD_COMMAND]
    assert is_built(str(tmp_path / "releases" / commit))


def test_a_linked_install_builds_whatever_pnpm_is_on_path(tmp_path, repo):
    first = repo.commit(app_files("v1"))
    build_release(options(tmp_path, repo, first), App())
    second = repo.commit({"apps/backend/src/index.ts": "console.log('v2');\n"})

    _build, result = build_release(options(tmp_path, repo, second), App(), pnpm_version="9.15.0")

    assert result["deps_linked"] and not result["pnpm_required"]
    assert is_built(str(tmp_path / "releases" / second))


@pytest.mark.parametrize(
    ("package_manager", "installed", "wanted", "mismatch"),
    [
        ("pnpm@10.34.9", "10.34.9", "", False),
        ("pnpm@10.34.9+sha512.abc", "10.34.9", "", False),
        ("pnpm@10.34.9", "10.34.9", "10.34.9", False),
        ("pnpm@10.34.9", "10.3", "", True),
        ("pnpm@10.34.9", "10.34.91", "", True),
        ("pnpm@10.34.9", "", "", True),
        ("pnpm@10.34.9", "10.34.9", "9.15.0", True),
        # No pin: the pnpm role decides which version.
        ("", "10.34.9", "", True),
    ],
)
def test_pnpm_mismatch(package_manager, installed, wanted, mismatch):
    assert pnpm_mismatch(package_manager, installed, wanted) is mismatch


def test_without_a_build_command_the_backend_build_script_runs_in_its_directory(tmp_path, repo):
    commit = repo.commit(app_files("v1"))
    app = App()
    params = options(
        tmp_path, repo, commit, build_command="", build_args=["--incremental", "--tsBuildInfoFile", "dist/.tsbuildinfo"]
    )

    build, result = build_release(params, app)

    command = "node --run build -- --incremental --tsBuildInfoFile dist/.tsbuildinfo"
    work = work_dir(str(tmp_path / "releases"), commit)
    assert app.ran == [(INSTALL_COMMAND, work), (command, f"{work}/apps/backend")]
    assert result["build_command"] == command
    timed = dict(build.steps[-1])
    assert isinstance(timed.pop("seconds"), float)
    assert timed == {"name": BUILD, "cmd": command, "rc": 0}
    assert (tmp_path / "releases" / commit / "apps/backend/dist/index.js").read_text() == "console.log('v1');\n"


def test_a_build_command_gets_the_build_arguments_quoted_and_runs_in_the_root(tmp_path, repo):
    commit = repo.commit(app_files("v1"))
    app = App()

    _build, result = build_release(
        options(tmp_path, repo, commit, build_args=["--tsBuildInfoFile", "dist/build info"]), app
    )

    command = f"{BUILD_COMMAND} --tsBuildInfoFile 'dist/build info'"
    assert app.ran[-1] == (command, work_dir(str(tmp_path / "releases"), commit))
    assert result["build_command"] == command


def test_a_backend_without_the_build_script_fails_before_the_install(tmp_path, repo):
    commit = repo.commit(app_files("v1", {"compile": "tsc"}))
    app = App()

    with pytest.raises(StepFailed) as failed:
        build_release(options(tmp_path, repo, commit, build_command=""), app)

    assert failed.value.step == UNPACK
    assert str(failed.value) == "the backend's package.json has no 'build' script: set the build command"
    assert app.ran == [] and not (tmp_path / "releases" / commit).exists()


@pytest.mark.parametrize(
    ("scripts", "args", "node", "command"),
    [
        ({"build": "tsc"}, [], "v24.21.0", "node --run build"),
        (
            {"build": "tsc"},
            ["--incremental", "--tsBuildInfoFile", "dist/x y"],
            "v22.3.0",
            "node --run build -- --incremental --tsBuildInfoFile 'dist/x y'",
        ),
        # Before 22.3, --run passed the arguments as one; Node 20 has none; a version not understood is not trusted.
        ({"build": "tsc"}, ["--incremental"], "v22.2.0", "pnpm run build --incremental"),
        ({"build": "tsc"}, ["--incremental"], "v20.19.2", "pnpm run build --incremental"),
        ({"build": "tsc"}, [], "", "pnpm run build"),
        # Only pnpm runs a pre or post script with the script.
        ({"prebuild": "rm -rf dist", "build": "tsc"}, [], "v24.21.0", "pnpm run build"),
        ({"build": "tsc", "postbuild": "cp -r assets dist"}, [], "v24.21.0", "pnpm run build"),
        # Another script's hooks do not matter.
        ({"build": "tsc", "prestart": "true"}, [], "v24.21.0", "node --run build"),
    ],
)
def test_script_command(scripts, args, node, command):
    assert script_command(scripts, "build", args, node) == command
