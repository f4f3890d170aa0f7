# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: frontend_env_check
short_description: Check what a Vite build would bake into its public bundle, before the build
version_added: 0.1.0
description:
  - Reads the C(VITE_) keys a C(vite build) in O(src) would expose to its bundle, as Vite loads them. These are
    the env files C(.env), C(.env.local), C(.env.<mode>) and C(.env.<mode>.local) (each later one winning), then
    the environment the module runs with, which wins over every file as it does for Vite.
  - Fails, naming each key, when a key of O(required) is missing or empty, or when any C(VITE_) key holds an
    C(http), C(https), C(ws) or C(wss) URL on the build machine's loopback (C(localhost), C(127.0.0.0/8),
    C(::1), C(0.0.0.0)). Every visitor's browser would call its own machine there; the Flora frontend falls
    back to C(http://localhost:3001/api) without C(VITE_API_URL).
  - Run it with the environment the build gets (the task's C(environment) keyword), before the build, so that
    nothing is built or published with such a bundle. Reads only; changes nothing.
author:
  - Flora platform team (@flora-marketplace)
options:
  src:
    description:
      - The directory Vite reads its env files from (its C(envDir), by default the frontend package's root).
    type: path
    required: true
  mode:
    description:
      - The Vite mode of the build; C(vite build) uses V(production) unless told otherwise.
    type: str
    default: production
  required:
    description:
      - The keys the app needs, for example V(VITE_API_URL). Each must be set to a value that is not empty.
    type: list
    elements: str
    default: []
  site_url:
    description:
      - The URL the site is served at. A loopback URL on its origin is allowed, for a site served from the build
        machine itself (a local stand-in of the CDN); any other loopback URL fails.
    type: str
    default: ""
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads only; runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Check the build-time env Vite will read
  flora.deploy.frontend_env_check:
    src: /srv/Flora/apps/frontend
    required:
      - VITE_API_URL
      - VITE_AUTH0_DOMAIN
  environment:
    CI: "true"

- name: Build the frontend
  ansible.builtin.command:
    argv: [pnpm, --filter, frontend, build]
    chdir: /srv/Flora
  environment:
    CI: "true"
  changed_when: false
"""

RETURN = r"""
keys:
  description: Each C(VITE_) key the build would see, with where its value comes from (an env file, or the environment).
  returned: always
  type: dict
  sample:
    VITE_API_URL: .env
    VITE_APP_NAME: .env.production
problems:
  description: One phrase per key that is missing, empty or a loopback URL.
  returned: always
  type: list
  elements: str
  sample: ["VITE_API_URL is http://localhost:3001/api (.env.production), on the build machine's loopback, ..."]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.frontend_env import (
    describe_problems,
    env_problems,
    read_vite_env,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "mode": {"type": "str", "default": "production"},
            "required": {"type": "list", "elements": "str", "default": []},
            "site_url": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    src, mode = module.params["src"], module.params["mode"]
    if not os.path.isdir(src):
        module.fail_json(msg=f"{src} is not a directory")
    values = read_vite_env(src, mode, os.environ)
    problems = env_problems(values, module.params["required"], module.params["site_url"])
    keys = {key: values[key].source for key in sorted(values)}
    if problems:
        module.fail_json(msg=describe_problems(src, mode, problems), keys=keys, problems=problems)
    module.exit_json(changed=False, keys=keys, problems=[])


if __name__ == "__main__":
    main()
