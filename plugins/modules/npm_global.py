# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: npm_global
short_description: Install an exact version of an npm package globally
version_added: 0.1.0
description:
  - Installs O(name) at O(version) with C(npm install --global), unless that version is what
    C(<prefix>/lib/node_modules/<name>/package.json) already says. Reading that file takes no npm run, so an
    installed package costs nothing, and check mode can tell what a real run would do on a host without npm.
  - After an install the version is read again; when npm put the package elsewhere, the task fails and says so.
author:
  - Flora platform team (@flora-marketplace)
options:
  name:
    description: The package.
    type: str
    required: true
  version:
    description: The exact version wanted.
    type: str
    required: true
  prefix:
    description:
      - npm's global prefix (C(npm prefix --global)), where the package is read. npm installs into the prefix its own
        configuration names, with the registry and CA settings of that configuration.
    type: path
    default: /usr/local
  executable:
    description: The npm command. Defaults to C(npm) on C(PATH), then C(<prefix>/bin/npm).
    type: path
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details: The version is read, nothing is installed; npm need not exist yet.
  diff_mode:
    support: full
    details: The installed version before and after.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Install PM2 6.0.14
  flora.deploy.npm_global:
    name: pm2
    version: 6.0.14
"""

RETURN = r"""
version:
  description: The version installed now (in check mode, the one a real run would leave).
  returned: success
  type: str
  sample: 6.0.14
previous_version:
  description: The version that was installed before, empty when there was none.
  returned: success
  type: str
  sample: 6.0.13
path:
  description: The package's directory.
  returned: success
  type: str
  sample: /usr/local/lib/node_modules/pm2
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.npm_global import installed_version, package_dir


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            version=dict(type="str", required=True),
            prefix=dict(type="path", default="/usr/local"),
            executable=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    name, version, prefix = module.params["name"], module.params["version"], module.params["prefix"]
    previous = installed_version(prefix, name)
    result = dict(
        changed=previous != version,
        version=version,
        previous_version=previous,
        path=package_dir(prefix, name),
        diff=dict(before=f"{name} {previous}\n" if previous else "", after=f"{name} {version}\n"),
    )
    if result["changed"] and not module.check_mode:
        npm = module.params["executable"] or module.get_bin_path("npm", required=True, opt_dirs=[f"{prefix}/bin"])
        module.run_command(
            [npm, "install", "--global", "--no-fund", "--no-audit", f"{name}@{version}"],
            check_rc=True,
            environ_update={"NO_UPDATE_NOTIFIER": "1"},
        )
        found = installed_version(prefix, name)
        if found != version:
            module.fail_json(
                msg=f"npm installed {name}@{version}, but {package_dir(prefix, name)} holds "
                f"{found or 'nothing'}: set prefix to npm's global prefix (npm prefix --global)",
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
