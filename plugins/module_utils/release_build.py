# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backend release built from a commit in one call to the host, for flora.deploy.release_dir.

The steps, each only after the last succeeded: unpack the commit into a fresh work directory beside the releases
(the shared env file linked in, a shared install linked when one has the commit's dependencies, the previous
release's build output carried for an incremental build); install the dependencies unless a shared install was
linked (and generate the database client), and share the fresh install; build; write the marker and rename the
work directory to the release directory. The live release is never touched. The install is shared before the
build, so that the build resolves the packages where the next releases will; a build that fails withdraws it
again, so only installs whose build succeeded are shared.

The install and the build are the app's own commands, run by ``run(command, cwd)``; the steps are named as the
redeploy reports them ("Unpack", "Install dependencies", "Build"). Without a build command, the build is the
backend's build script, run by Node's own script runner where it can be (``script_command``).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import time
import typing as t

from ansible_collections.flora.deploy.plugins.module_utils.release_deps import (
    deps_adopt,
    deps_link,
    same_dependencies,
    write_key,
)
from ansible_collections.flora.deploy.plugins.module_utils.release_ledger import set_aside
from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import (
    ReleaseError,
    carry_build_output,
    export_commit,
    publish,
    read_package,
)

UNPACK, INSTALL, BUILD = "Unpack", "Install dependencies", "Build"

# run(command, cwd) -> (exit code, standard output, standard error)
Runner = t.Callable[[str, str], "tuple[int, str, str]"]


class StepFailed(Exception):
    """A step of the build failed; ``details`` are its command, exit code and output, when it ran one."""

    def __init__(self, step: str, msg: str, **details: t.Any):
        super().__init__(msg)
        self.step = step
        self.details = details


def script_command(scripts: t.Mapping[str, t.Any], script: str, args: t.Sequence[str], node_version: str) -> str:
    """The command that runs the package script ``script`` with ``args`` in the package's directory, for a package
    whose scripts are ``scripts``, with Node ``node_version`` ("v24.21.0").

    Node's own script runner (``node --run``) starts in a few milliseconds where pnpm takes half a second. From Node
    22.3 on it passes each argument on, and puts every ``node_modules/.bin`` from the package's directory up on
    ``PATH``, as pnpm does (earlier 22.x releases passed the arguments as one). It runs no pre or post script, and
    sets none of pnpm's ``npm_*`` variables: a package with a ``pre<script>`` or ``post<script>`` script, or an
    older or unrecognised Node version, gets ``pnpm run``.
    """
    if script not in scripts:
        raise ReleaseError(f"the backend's package.json has no {script!r} script: set the build command")
    match = re.match(r"v?(\d+)\.(\d+)\.", node_version)
    hooks = {f"pre{script}", f"post{script}"} & set(scripts)
    if match and (int(match.group(1)), int(match.group(2))) >= (22, 3) and not hooks:
        return shlex.join(["node", "--run", script, *(["--", *args] if args else [])])
    return shlex.join(["pnpm", "run", script, *args])


def pnpm_mismatch(package_manager: str, installed: str, wanted: str = "") -> bool:
    """Whether the pnpm on PATH (version ``installed``, '' when none) is not the one to install with: the one the
    app pins in ``package_manager`` ("pnpm@10.12.1", maybe with "+sha..."), or ``wanted`` when given. With no pin
    and no wanted version, the pnpm role decides, so it is a mismatch too."""
    if not installed or (wanted and wanted != installed):
        return True
    return re.match(r"pnpm@" + re.escape(installed) + r"(\+|$)", package_manager) is None


class ReleaseBuild:
    """Building the release of ``params["commit"]`` (release_dir's options) in ``work``."""

    def __init__(
        self,
        params: t.Mapping[str, t.Any],
        work: str,
        run: Runner,
        node_version: t.Callable[[], str],
        show_config: t.Callable[[str, str], dict],
        clock: t.Callable[[], float] = time.monotonic,
    ):
        self.params = params
        self.work = work
        self.app = os.path.join(work, params["app_dir"])
        self.run = run
        self.node_version = functools.cache(node_version)
        self.show_config = show_config
        self.clock = clock
        self.steps: list[dict[str, t.Any]] = []

    def unpack(self) -> dict[str, t.Any]:
        """A fresh work directory with the commit's files; what the next steps need to know about it."""
        started = self.clock()
        params = self.params
        try:
            export_commit(params["repo"], params["commit"], self.work)
            if params["env_file"]:
                os.symlink(params["env_file"], os.path.join(self.app, ".env"))
            root = read_package(os.path.join(self.work, "package.json"))
            scripts = read_package(os.path.join(self.app, "package.json")).get("scripts") or {}
            has_script = params["generate_script"] in scripts
            if params["build_command"]:
                build_command = " ".join([params["build_command"], *map(shlex.quote, params["build_args"])])
            else:
                build_command = script_command(
                    scripts, params["build_script"], params["build_args"], self.node_version()
                )
            result: dict[str, t.Any] = dict(
                package_manager=str(root.get("packageManager") or ""),
                generate_command=params["generate_command"] if params["generate_command"] and has_script else "",
                build_command=build_command,
                deps_linked=False,
                build_carried=False,
                build_carried_note="no release to carry the build output from",
            )
            if params["share_deps"]:
                inputs = [
                    params["install_command"],
                    result["generate_command"],
                    self.node_version(),
                    os.uname().machine,
                ]
                key, linked = deps_link(
                    params["deps_dir"], self.work, params["repo"], params["commit"], params["deps_files"], inputs
                )
                write_key(self.work, key)
                result.update(deps_key=key, deps_linked=linked)
            result.update(self.carry_build(result))
        except (ReleaseError, OSError) as e:
            raise StepFailed(UNPACK, str(e)) from e
        self.steps.append({"name": UNPACK, "seconds": round(self.clock() - started, 3)})
        return result

    def carry_build(self, unpacked: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        previous, build_info = self.params["carry_build_from"], self.params["build_info"]
        if not previous or not build_info:
            return {}
        if not same_dependencies(self.work, previous, unpacked.get("deps_key", "")):
            return {"build_carried_note": f"the dependencies differ from those of {previous}: a full build"}
        # Before an install that could not be linked, the work directory has no tsc yet: the previous release's,
        # of the same dependencies, reads the work directory's configuration.
        tsc_app = self.app if unpacked["deps_linked"] else os.path.join(previous, self.params["app_dir"])
        carried, note, stale = carry_build_output(
            os.path.join(previous, self.params["app_dir"]),
            self.app,
            build_info,
            lambda: self.show_config(self.app, tsc_app),
        )
        return dict(build_carried=carried, build_carried_note=note, **({"stale_outputs": stale} if carried else {}))

    def run_step(self, step: str, command: str, cwd: str = "") -> None:
        """The app's own command in ``cwd`` (the work directory by default); StepFailed when it exits non-zero."""
        started = self.clock()
        cwd = cwd or self.work
        rc, out, err = self.run(command, cwd)
        self.steps.append({"name": step, "cmd": command, "rc": rc, "seconds": round(self.clock() - started, 3)})
        if rc != 0:
            raise StepFailed(
                step, f"{step} failed: `{command}` exited with {rc} in {cwd}", cmd=command, rc=rc, stdout=out,
                stderr=err,
            )  # fmt: skip

    def build(self, pnpm_version: str) -> dict[str, t.Any]:
        """Unpack, then install, build and publish, unless a fresh install needs another pnpm than the one on PATH
        (version ``pnpm_version``, '' when none) and params["check_pnpm"] is set: then stop after unpacking, with
        ``pnpm_required``."""
        result = self.unpack()
        result["pnpm_version"] = pnpm_version
        result["pnpm_required"] = bool(
            self.params["check_pnpm"]
            and not result["deps_linked"]
            and pnpm_mismatch(result["package_manager"], pnpm_version, self.params["pnpm_version"])
        )
        if not result["pnpm_required"]:
            result.update(self.install_and_build(result))
        return result

    def install_and_build(self, unpacked: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """Install and share the install unless a shared install was linked, build, and publish the release."""
        params = self.params
        installed = not unpacked["deps_linked"]
        result: dict[str, t.Any] = {"installed": installed}
        shared = False
        if installed:
            self.run_step(INSTALL, params["install_command"])
            if unpacked["generate_command"]:
                self.run_step(INSTALL, unpacked["generate_command"])
            if params["share_deps"]:
                try:
                    shared, result["shared"] = deps_adopt(params["deps_dir"], unpacked["deps_key"], self.work)
                except (ReleaseError, OSError, subprocess.CalledProcessError) as e:
                    raise StepFailed(INSTALL, f"the install could not be shared: {e}") from e
        try:
            # The app's build command runs where the app's own commands run; its build script in its directory.
            self.run_step(BUILD, unpacked["build_command"], self.work if params["build_command"] else self.app)
        except StepFailed:
            # Withdrawn as a prune removes a shared install, but now: nothing else links one this build just shared.
            if shared:
                subprocess.run(["rm", "-rf", "--", set_aside(params["deps_dir"], unpacked["deps_key"])], check=True)
            raise
        try:
            publish(self.work, os.path.join(params["releases_dir"], params["commit"]), params["commit"], params["ref"])
        except (ReleaseError, OSError) as e:
            raise StepFailed(BUILD, f"the built release could not be made a release directory: {e}") from e
        return result
