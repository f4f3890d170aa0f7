# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_dir
short_description: Build a backend release directory on the host in one call
version_added: 0.1.0
description:
  - Unless C(<releases_dir>/<commit>) is built already, builds the commit O(commit) into it in one call to the
    host, each step only after the last succeeded.
  - Unpack. Exports the commit from the repository cache O(repo) into a fresh work directory beside the releases
    (C(<releases_dir>/.<commit>.partial); whatever an interrupted build left there goes) and links the backend's
    C(.env) to O(env_file).
  - With O(share_deps), a commit whose dependencies (the files matching O(deps_files), the install and generate
    commands, the Node.js version and the architecture) are those of a release already built links that release's
    installed packages from O(deps_dir) instead of installing again (RV(deps_linked)).
  - With O(carry_build_from) and O(build_info), and the dependencies of that release (the same shared install, or
    the same dependency key when the install could not be shared), its build output is carried into the work
    directory for an incremental build, keeping only the files tsc emits for the new commit's sources
    (C(tsc --showConfig) in the work directory), so the output of a deleted or renamed source does not survive.
  - Install. Unless a shared install was linked, runs O(install_command), then O(generate_command) when the
    backend has the script O(generate_script). With O(share_deps) the fresh install then moves to O(deps_dir) for
    the next releases, before the build, so the build finds the packages where those releases will (their
    incremental builds start from build info that names the same files). When the pnpm on C(PATH) is not the one
    the app pins in its C(packageManager) (or O(pnpm_version)), and O(check_pnpm) is set, it stops after unpacking
    instead and returns RV(pnpm_required), so that the caller installs that pnpm (this module runs as the app
    user, who cannot) and calls it again.
  - Build. Runs O(build_command) with O(build_args); without O(build_command), the backend's script O(build_script)
    with O(build_args), in the backend's directory, by Node's own script runner (C(node --run), Node 22.3 and later,
    which starts in milliseconds where pnpm takes half a second), or by C(pnpm run) on a Node older than 22.3 or
    when the package has a C(pre) or C(post) script of it, which only pnpm runs.
  - Then the C(.flora-release) marker is written last inside the work directory, and the work directory is
    renamed to the release directory. A release directory without its marker never exists. A failed step leaves
    the releases, the live one among them, as they were, and a failed build withdraws the install it shared (only
    installs whose build succeeded are shared).
  - The install and the build are the app's own commands. They run as C(/bin/bash -e -o pipefail -c <command>) in
    the work directory (the backend's build script in the backend's directory), at the niceness O(nice), with the
    module's environment (the task's C(environment)).
author:
  - Flora platform team (@flora-marketplace)
options:
  state:
    description: V(built) builds the release unless it is built.
    type: str
    choices: [built]
    default: built
  repo:
    description: The bare repository cache on the host.
    type: path
    required: true
  commit:
    description: The commit to build.
    type: str
    required: true
  ref:
    description: The ref the commit was resolved from, for the marker.
    type: str
  releases_dir:
    description: Where the release directories are.
    type: path
    required: true
  app_dir:
    description: The backend's directory in the repository.
    type: str
    default: apps/backend
  env_file:
    description: The shared env file the backend's C(.env) links to. Not linked when unset.
    type: path
  share_deps:
    description: Share installs between releases with the same dependencies (see O(deps_dir)).
    type: bool
    default: true
  deps_dir:
    description: Where shared installs are kept, one directory per dependency key.
    type: path
  deps_files:
    description: Git glob patterns of the files that decide what an install writes.
    type: list
    elements: str
    default: [pnpm-lock.yaml, pnpm-workspace.yaml, "**/package.json", "**/.npmrc", .pnpmfile.cjs, patches/**, "**/*.prisma"]
  install_command:
    description: The install command, run in the work directory; part of the dependency key.
    type: str
    required: true
  generate_command:
    description:
      - The command that generates code into the installed packages (Prisma's client), run after the install;
        part of the dependency key.
      - Run, and returned as RV(generate_command), only when the backend's C(package.json) has the script
        O(generate_script).
    type: str
    default: ""
  generate_script:
    description: The backend script O(generate_command) runs.
    type: str
    default: db:generate
  build_command:
    description:
      - The build command, run in the work directory. Empty runs the backend's script O(build_script) instead.
    type: str
    default: ""
  build_script:
    description: The backend script that builds it, run when O(build_command) is empty.
    type: str
    default: build
  build_args:
    description:
      - Arguments appended to the build, each quoted for the shell that runs it (for the Flora backend's C(tsc), its
        C(--incremental --tsBuildInfoFile <file>)). The script runners hand them to the script's own shell, so keep
        them free of C($), backquotes, quotes and backslashes.
    type: list
    elements: str
    default: []
  carry_build_from:
    description: The release directory whose build output an incremental build starts from (the live release).
    type: path
  build_info:
    description:
      - tsc's build info file, relative to the backend's directory and inside its output directory (the build
        writes it there with C(--tsBuildInfoFile) in O(build_args)). Nothing is carried without it.
    type: str
  tsconfig:
    description: The tsconfig file of the build, relative to the backend's directory.
    type: str
    default: tsconfig.json
  check_pnpm:
    description:
      - Before an install, check that the pnpm on C(PATH) is the one to install with, and stop after unpacking
        (RV(pnpm_required)) when it is not. V(false) installs with whatever pnpm there is.
    type: bool
    default: true
  pnpm_version:
    description: The pnpm version to install with, when not the one the app pins. Empty follows the app.
    type: str
    default: ""
  nice:
    description: The niceness the install and the build run at, so that the live app on the same CPUs comes first.
    type: int
    default: 10
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the release is built, and would be built; changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A built release is left as it is.
notes:
  - Run it as the app user, who owns the releases and the repository cache (C(become_user)), with C(node) and the
    app's package manager on C(PATH).
  - The output of a failed install or build is returned as it is (RV(stdout), RV(stderr)).
seealso:
  - module: flora.deploy.release_activate
"""

EXAMPLES = r"""
- name: Unpack, install and build the commit unless its release is built
  flora.deploy.release_dir:
    repo: /home/ubuntu/Flora/repo.git
    commit: 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
    ref: main
    releases_dir: /home/ubuntu/Flora/releases
    env_file: /home/ubuntu/Flora/shared/backend.env
    deps_dir: /home/ubuntu/Flora/deps
    install_command: pnpm install --frozen-lockfile --filter backend... --store-dir /home/ubuntu/Flora/.pnpm-store
    generate_command: pnpm --filter backend db:generate
    build_args: [--incremental, --tsBuildInfoFile, dist/.tsbuildinfo]
    carry_build_from: /home/ubuntu/Flora/releases/0d4c6f7e2b9a8c1d3e5f7a9b0c2d4e6f8a1b3c5d
    build_info: dist/.tsbuildinfo
  become: true
  become_user: ubuntu
  environment:
    PATH: /usr/local/bin:/usr/bin:/bin
    NODE_OPTIONS: --max-old-space-size=512
  register: release
"""

RETURN = r"""
built:
  description: Whether the release directory existed, built, before this call (nothing was done).
  returned: always
  type: bool
release_dir:
  description: The release directory.
  returned: always
  type: str
work_dir:
  description: The work directory the install and the build run in (the release directory when it was built before).
  returned: always
  type: str
package_manager:
  description: The root C(package.json)'s C(packageManager) field ('' when it has none).
  returned: when the commit was unpacked
  type: str
pnpm_version:
  description: The version of the pnpm on C(PATH) ('' when there is none).
  returned: when the commit was unpacked
  type: str
pnpm_required:
  description:
    - Whether the call stopped after unpacking because the install needs another pnpm than the one on C(PATH)
      (RV(package_manager), or O(pnpm_version)). Nothing was installed or built.
  returned: when the commit was unpacked
  type: bool
generate_command:
  description: O(generate_command) when the backend has the script O(generate_script), else ''.
  returned: when the commit was unpacked
  type: str
build_command:
  description:
    - The command the build runs, with O(build_args) (in the work directory when it is O(build_command), else in
      the backend's directory).
  returned: when the commit was unpacked
  type: str
  sample: node --run build -- --incremental --tsBuildInfoFile dist/.tsbuildinfo
deps_key:
  description: The key of the commit's dependencies.
  returned: when the commit was unpacked with O(share_deps)
  type: str
deps_linked:
  description: Whether a shared install was linked into the work directory (no install needed).
  returned: when the commit was unpacked
  type: bool
build_carried:
  description: Whether the build output of O(carry_build_from) was carried over for an incremental build.
  returned: when the commit was unpacked
  type: bool
build_carried_note:
  description: Where the build output came from, or why none was carried.
  returned: when the commit was unpacked
  type: str
stale_outputs:
  description: Carried files that the new commit's sources no longer produce, deleted before the build.
  returned: when the build output was carried
  type: list
  elements: str
installed:
  description: Whether the dependencies were installed (no shared install could be linked).
  returned: when the release was built
  type: bool
shared:
  description: What became of a fresh install (shared for the next releases, or kept in the release, and why).
  returned: when the release was built with a fresh install and O(share_deps)
  type: str
steps:
  description:
    - The steps that ran, in order, each with its V(name) (V(Unpack), V(Install dependencies), V(Build)) and
      V(seconds); a command's step also with its V(cmd) and V(rc).
  returned: when the commit was unpacked
  type: list
  elements: dict
failed_step:
  description: The step that failed (V(Unpack), V(Install dependencies) or V(Build)).
  returned: failure
  type: str
cmd:
  description: The failed command.
  returned: failure of a command
  type: str
rc:
  description: The failed command's exit code.
  returned: failure of a command
  type: int
stdout:
  description: The failed command's standard output.
  returned: failure of a command
  type: str
stderr:
  description: The failed command's standard error.
  returned: failure of a command
  type: str
"""

import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.release_build import ReleaseBuild, StepFailed
from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import (
    ReleaseError,
    installed_pnpm_version,
    is_built,
    work_dir,
)


def node_version(module) -> str:
    rc, out, err = module.run_command(["node", "--version"])
    if rc != 0:
        raise ReleaseError(f"node --version failed: {err.strip() or out.strip() or f'exit {rc}'}")
    return out.strip()


def show_config(module, app, tsc_app) -> dict:
    """`tsc --showConfig` of the project in app, with the tsc installed in tsc_app."""
    tsc = os.path.join(tsc_app, "node_modules", ".bin", "tsc")
    if not os.path.exists(tsc):
        raise ReleaseError(f"{tsc} does not exist")
    rc, out, err = module.run_command([tsc, "-p", module.params["tsconfig"], "--showConfig"], cwd=app)
    if rc != 0:
        raise ReleaseError((err or out).strip().splitlines()[-1] if (err or out).strip() else f"exit {rc}")
    return json.loads(out)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["built"], default="built"),
            repo=dict(type="path", required=True),
            commit=dict(type="str", required=True),
            ref=dict(type="str"),
            releases_dir=dict(type="path", required=True),
            app_dir=dict(type="str", default="apps/backend"),
            env_file=dict(type="path"),
            share_deps=dict(type="bool", default=True),
            deps_dir=dict(type="path"),
            deps_files=dict(
                type="list",
                elements="str",
                default=[
                    "pnpm-lock.yaml",
                    "pnpm-workspace.yaml",
                    "**/package.json",
                    "**/.npmrc",
                    ".pnpmfile.cjs",
                    "patches/**",
                    "**/*.prisma",
                ],
            ),
            install_command=dict(type="str", required=True),
            generate_command=dict(type="str", default=""),
            generate_script=dict(type="str", default="db:generate"),
            build_command=dict(type="str", default=""),
            build_script=dict(type="str", default="build"),
            build_args=dict(type="list", elements="str", default=[]),
            carry_build_from=dict(type="path"),
            build_info=dict(type="str"),
            tsconfig=dict(type="str", default="tsconfig.json"),
            check_pnpm=dict(type="bool", default=True),
            pnpm_version=dict(type="str", default=""),
            nice=dict(type="int", default=10),
        ),
        required_if=[["share_deps", True, ["deps_dir"]]],
        supports_check_mode=True,
    )
    params = module.params
    release_dir = os.path.join(params["releases_dir"], params["commit"])
    work = work_dir(params["releases_dir"], params["commit"])
    if is_built(release_dir):
        module.exit_json(changed=False, built=True, release_dir=release_dir, work_dir=release_dir)
    if module.check_mode:
        module.exit_json(changed=True, built=False, release_dir=release_dir, work_dir=work)

    def run(command, cwd):
        # The command as bash reads it: no expansion of $VAR or ~ before that.
        return module.run_command(
            ["nice", "-n", str(params["nice"]), "/bin/bash", "-e", "-o", "pipefail", "-c", command],
            cwd=cwd,
            expand_user_and_vars=False,
        )

    release = ReleaseBuild(
        params,
        work,
        run,
        node_version=lambda: node_version(module),
        show_config=lambda app, tsc_app: show_config(module, app, tsc_app),
    )
    result = dict(changed=True, built=False, release_dir=release_dir, work_dir=work)
    try:
        result.update(release.build(installed_pnpm_version(shutil.which("pnpm"))))
    except StepFailed as e:
        module.fail_json(
            msg=f"Release {params['commit'][:12]}: {e}", failed_step=e.step, steps=release.steps, **e.details
        )
    module.exit_json(steps=release.steps, **result)


if __name__ == "__main__":
    main()
