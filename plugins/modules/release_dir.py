# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_dir
short_description: Prepare and finish a backend release directory on the host
version_added: 0.1.0
description:
  - A commit is built in a work directory beside the releases (C(<releases_dir>/.<commit>.partial)) and becomes
    C(<releases_dir>/<commit>) once built, with a C(.flora-release) marker written last inside it. The live
    release is never touched.
  - With O(state=unpacked), unless the release is built already, exports the commit from the repository cache O(repo)
    into a fresh work directory (whatever an interrupted build left there goes), links the backend's C(.env) to
    O(env_file), and reads the root's and the backend's C(package.json) and the version of the pnpm on C(PATH).
  - With O(share_deps), a commit whose dependencies (the files matching O(deps_files), the install and generate
    commands, the Node.js version and the architecture) are those of a release already built links that release's
    installed packages from O(deps_dir) instead of installing again (RV(deps_linked)).
  - With O(carry_build_from) and O(build_info), and the dependencies of that release (the same shared install, or
    the same dependency key when the install could not be shared), its build output is carried into the work
    directory for an incremental build, keeping only the files tsc emits for the new commit's sources
    (C(tsc --showConfig) in the work directory), so the output of a deleted or renamed source does not survive.
  - With O(state=built), shares a fresh install in O(deps_dir) for the next releases, writes the marker and renames
    the work directory to the release directory.
author:
  - Flora platform team (@flora-marketplace)
options:
  state:
    description: V(unpacked) prepares the work directory; V(built) turns it into the release directory.
    type: str
    choices: [unpacked, built]
    required: true
  repo:
    description: The bare repository cache on the host.
    type: path
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
    description: The install command, part of the dependency key.
    type: str
    default: ""
  generate_command:
    description:
      - The command that generates code into the installed packages (Prisma's client), part of the dependency key.
      - Returned as RV(generate_command) only when the backend's C(package.json) has the script O(generate_script).
    type: str
    default: ""
  generate_script:
    description: The backend script O(generate_command) runs.
    type: str
    default: db:generate
  carry_build_from:
    description: The release directory whose build output an incremental build starts from (the live release).
    type: path
  build_info:
    description:
      - tsc's build info file, relative to the backend's directory and inside its output directory (the build
        command writes it there with C(--tsBuildInfoFile)). Nothing is carried without it.
    type: str
  tsconfig:
    description: The tsconfig file of the build, relative to the backend's directory.
    type: str
    default: tsconfig.json
  deps_key:
    description: With O(state=built), the dependency key RV(deps_key) the unpacking returned.
    type: str
  deps_linked:
    description: With O(state=built), whether the unpacking linked a shared install (RV(deps_linked)).
    type: bool
    default: false
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the release is built and would be unpacked; changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A built release is left as it is.
notes:
  - Run it as the app user, who owns the releases and the repository cache (C(become_user)), with C(node) on C(PATH).
seealso:
  - module: flora.deploy.release_activate
"""

EXAMPLES = r"""
- name: Export the commit into a work directory unless it is built
  flora.deploy.release_dir:
    state: unpacked
    repo: /home/ubuntu/Flora/repo.git
    commit: 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
    releases_dir: /home/ubuntu/Flora/releases
    env_file: /home/ubuntu/Flora/shared/backend.env
    deps_dir: /home/ubuntu/Flora/deps
    install_command: pnpm install --frozen-lockfile --filter backend...
    generate_command: pnpm --filter backend db:generate
    carry_build_from: /home/ubuntu/Flora/releases/0d4c6f7e2b9a8c1d3e5f7a9b0c2d4e6f8a1b3c5d
    build_info: dist/.tsbuildinfo
  become: true
  become_user: ubuntu
  register: unpacked

- name: Publish the built release
  flora.deploy.release_dir:
    state: built
    commit: 3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d
    ref: main
    releases_dir: /home/ubuntu/Flora/releases
    deps_dir: /home/ubuntu/Flora/deps
    deps_key: "{{ unpacked.deps_key }}"
    deps_linked: "{{ unpacked.deps_linked }}"
  become: true
  become_user: ubuntu
  when: not unpacked.built
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
  description: The work directory the install and the build run in.
  returned: with O(state=unpacked)
  type: str
packages:
  description: The root's and the backend's C(package.json) (V(root), V(backend)).
  returned: with O(state=unpacked) when the commit was exported
  type: dict
package_manager:
  description: The root C(package.json)'s C(packageManager) field ('' when it has none).
  returned: with O(state=unpacked) when the commit was exported
  type: str
pnpm_version:
  description: The version of the pnpm on C(PATH) ('' when there is none).
  returned: with O(state=unpacked) when the commit was exported
  type: str
generate_command:
  description: O(generate_command) when the backend has the script O(generate_script), else ''.
  returned: with O(state=unpacked) when the commit was exported
  type: str
deps_key:
  description: The key of the commit's dependencies.
  returned: with O(state=unpacked) and O(share_deps) when the commit was exported
  type: str
deps_linked:
  description: Whether a shared install was linked into the work directory (no install needed).
  returned: with O(state=unpacked) when the commit was exported
  type: bool
build_carried:
  description: Whether the build output of O(carry_build_from) was carried over for an incremental build.
  returned: with O(state=unpacked) when the commit was exported
  type: bool
build_carried_note:
  description: Where the build output came from, or why none was carried.
  returned: with O(state=unpacked) when the commit was exported
  type: str
stale_outputs:
  description: Carried files that the new commit's sources no longer produce, deleted before the build.
  returned: with O(state=unpacked) when the build output was carried
  type: list
  elements: str
shared:
  description: What became of the install (shared for the next releases, or kept in the release, and why).
  returned: with O(state=built) and O(share_deps)
  type: str
"""

import json
import os
import platform
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.release_deps import (
    deps_adopt,
    deps_link,
    same_dependencies,
    write_key,
)
from ansible_collections.flora.deploy.plugins.module_utils.release_workdir import (
    ReleaseError,
    carry_build_output,
    export_commit,
    installed_pnpm_version,
    is_built,
    publish,
    read_package,
    work_dir,
)


def node_version(module) -> str:
    rc, out, err = module.run_command(["node", "--version"])
    if rc != 0:
        module.fail_json(msg=f"node --version failed: {err.strip() or out.strip()}")
    return out.strip()


def unpack(module, release_dir, work):
    params = module.params
    export_commit(params["repo"], params["commit"], work)
    app = os.path.join(work, params["app_dir"])
    if params["env_file"]:
        os.symlink(params["env_file"], os.path.join(app, ".env"))
    packages = {
        "root": read_package(os.path.join(work, "package.json")),
        "backend": read_package(os.path.join(app, "package.json")),
    }
    has_script = params["generate_script"] in (packages["backend"].get("scripts") or {})
    generate = params["generate_command"] if params["generate_command"] and has_script else ""
    result = dict(
        changed=True,
        built=False,
        release_dir=release_dir,
        work_dir=work,
        packages=packages,
        package_manager=str(packages["root"].get("packageManager") or ""),
        pnpm_version=installed_pnpm_version(shutil.which("pnpm")),
        generate_command=generate,
        deps_linked=False,
        build_carried=False,
        build_carried_note="no release to carry the build output from",
    )
    if params["share_deps"]:
        inputs = [params["install_command"], generate, node_version(module), platform.machine()]
        key, linked = deps_link(
            params["deps_dir"], work, params["repo"], params["commit"], params["deps_files"], inputs
        )
        write_key(work, key)
        result.update(deps_key=key, deps_linked=linked)
    previous = params["carry_build_from"]
    if previous and params["build_info"]:
        if not same_dependencies(work, previous, result.get("deps_key", "")):
            result["build_carried_note"] = f"the dependencies differ from those of {previous}: a full build"
        else:
            # Before an install that could not be linked, the work directory has no tsc yet: the previous
            # release's, of the same dependencies, reads the work directory's configuration.
            tsc_app = app if result["deps_linked"] else os.path.join(previous, params["app_dir"])
            carried, note, stale = carry_build_output(
                os.path.join(previous, params["app_dir"]),
                app,
                params["build_info"],
                lambda: show_config(module, app, tsc_app),
            )
            result.update(build_carried=carried, build_carried_note=note)
            if carried:
                result["stale_outputs"] = stale
    return result


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
            state=dict(type="str", choices=["unpacked", "built"], required=True),
            repo=dict(type="path"),
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
            install_command=dict(type="str", default=""),
            generate_command=dict(type="str", default=""),
            generate_script=dict(type="str", default="db:generate"),
            carry_build_from=dict(type="path"),
            build_info=dict(type="str"),
            tsconfig=dict(type="str", default="tsconfig.json"),
            deps_key=dict(type="str", no_log=False),
            deps_linked=dict(type="bool", default=False),
        ),
        required_if=[["state", "unpacked", ["repo"]], ["share_deps", True, ["deps_dir"]]],
        supports_check_mode=True,
    )
    params = module.params
    release_dir = os.path.join(params["releases_dir"], params["commit"])
    work = work_dir(params["releases_dir"], params["commit"])
    if is_built(release_dir):
        module.exit_json(changed=False, built=True, release_dir=release_dir, work_dir=release_dir)
    if module.check_mode:
        module.exit_json(changed=True, built=False, release_dir=release_dir, work_dir=work)
    try:
        if params["state"] == "unpacked":
            module.exit_json(**unpack(module, release_dir, work))
        result = dict(changed=True, built=False, release_dir=release_dir)
        if params["share_deps"] and not params["deps_linked"]:
            if not params["deps_key"]:
                module.fail_json(msg="deps_key is required to share a fresh install (the unpacking's deps_key)")
            result["shared"] = deps_adopt(params["deps_dir"], params["deps_key"], work)
        publish(work, release_dir, params["commit"], params["ref"])
    except (ReleaseError, OSError) as e:
        module.fail_json(msg=f"Release {params['commit'][:12]}: {e}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
