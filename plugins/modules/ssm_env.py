# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ssm_env
short_description: Render an env file from AWS SSM Parameter Store
version_added: 0.1.0
description:
  - Reads every parameter under one or more SSM Parameter Store paths (recursive, paginated, decrypted)
    and/or named parameters, maps them to environment variable names, and writes an env file that reads
    back byte for byte through the reader that loads it (O(reader)).
  - With neither a path nor a name to read (O(paths) and O(names) both empty, after templating), the task fails
    and the file is left as it was, rather than be replaced by one without any secret.
  - Parameters under a path cost one C(GetParametersByPath) call per 10 parameters; named parameters
    one C(GetParameters) call per 10 names. Every call is retried with jittered backoff on throttling.
  - The file is written atomically (a private temporary file in the same directory, then a rename), with
    mode V(0600) by default, in a stable sorted order, and only when its content changes.
  - Values are never returned or printed. Diff mode lists the keys added, removed and changed, with
    their values masked. Decrypted C(SecureString) values are also masked in anything Ansible prints.
  - Runs on the target host with the instance's own credentials by default; it also works delegated to the
    controller.
author:
  - Flora platform team (@flora-marketplace)
options:
  dest:
    description:
      - The env file to write. Its directory must exist.
    type: path
    required: true
  paths:
    description:
      - Parameter Store paths whose parameters are all read, for example V(/flora/prod).
      - A path with no parameters fails the task (an unknown path); access denied fails with its own message.
    type: list
    elements: str
    default: []
  recursive:
    description:
      - Read parameters in the whole hierarchy below each of O(paths), not only its direct children.
    type: bool
    default: true
  names:
    description:
      - Full names of parameters to read in addition to O(paths). A name that does not exist fails the task.
    type: list
    elements: str
    default: []
  rename:
    description:
      - Map of parameter (full name or last path segment) to the env key it is written as.
      - Without an entry, a parameter's key is its last path segment upper-cased
        (V(/flora/prod/stripe_secret_key) becomes V(STRIPE_SECRET_KEY)).
    type: dict
    default: {}
  exclude:
    description:
      - Parameters (full name or last path segment) that are read but not written as keys of their own,
        typically because they only feed O(compose) values.
    type: list
    elements: str
    default: []
  literals:
    description:
      - Map of key to a literal value, written as given.
      - Literals are settings, not secrets, and are not masked in output (masking short values such as V(3001)
        would also mask them inside checksums, commits and other results). Secrets belong in Parameter Store.
    type: dict
    default: {}
  compose:
    description:
      - Map of key to a value built on the host from the fetched parameters.
      - V(${name}) inserts a parameter (full name or last path segment); V(${name|urlencode}) URL-encodes it
        (every reserved character, so it is safe in a URL's user or password part); V(upper) and V(lower)
        are the other filters, and filters chain (V(${name|lower|urlencode})). V($$) is a literal V($).
      - An alias of a parameter is V(${name}).
      - Jinja runs first, so playbook variables such as a database host can be written into the template.
    type: dict
    default: {}
  required:
    description:
      - Keys that must be in the file. If any is missing the task fails naming every missing key,
        before anything is written.
    type: list
    elements: str
    default: []
  mode:
    description:
      - Permissions of the file, as an octal string such as V('0600') or an octal number.
    type: raw
    default: '0600'
  owner:
    description:
      - Name or uid of the user that owns the file. Defaults to the user running the module.
    type: str
  group:
    description:
      - Name or gid of the group of the file.
    type: str
  backup:
    description:
      - Keep a timestamped copy of the previous file next to it when the content changes.
    type: bool
    default: false
  reader:
    description:
      - What loads the file. Each value is written in the form this reader reads back unchanged, and a value it
        cannot carry at all fails the task naming its key and why, before anything is written.
      - V(dotenv) is npm C(dotenv) 16 (C(parse) and C(config); the Flora backend's). It cannot carry a value that
        holds a single quote or a carriage return, and a backtick or a carriage return, and a double quote or a
        backslash before an C(n) or C(r).
      - V(python-dotenv) is python-dotenv's C(load_dotenv) and C(dotenv_values) with their variable expansion on, as
        by default. It cannot carry a value holding C(${...}), which it expands whatever the quoting.
      - V(vite) is Vite's C(loadEnv) (npm C(dotenv) 16, then C(dotenv-expand)), the frontend build's. Every C($) is
        written as C(\$), which it reads back as C($); it cannot carry what V(dotenv) cannot, with each C($) counted
        as a backslash before it. A variable of the build's own environment with the same name still wins, as
        Vite decides.
      - No reader carries a NUL character, which ends an environment string, or text that is not UTF-8.
    type: str
    choices: [dotenv, python-dotenv, vite]
    default: dotenv
    version_added: 0.1.0
requirements:
  - boto3 >= 1.26.0 and botocore >= 1.29.0 on the host, as Debian 12's C(python3-boto3) provides (older releases get a
    warning; amazon.aws's general minimum, 1.34, does not apply to the Parameter Store calls made here)
notes:
  - For V(dotenv), each value is written in single quotes, double quotes with C(\n) and C(\r) for line breaks,
    backticks, or unquoted, the first that carries it; for V(python-dotenv), in single quotes, or in double quotes
    with escapes when it holds a carriage return.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Values are masked; the diff names the keys added, removed and changed.
  idempotent:
    support: full
seealso:
  - module: amazon.aws.ssm_parameter
"""

EXAMPLES = r"""
- name: Render the Flora backend env file from Parameter Store
  flora.deploy.ssm_env:
    dest: /home/ubuntu/Flora/shared/backend.env
    owner: ubuntu
    group: ubuntu
    region: ap-southeast-2
    paths:
      - /flora/prod
    exclude:
      - db_username
      - db_password
    literals:
      NODE_ENV: production
      PORT: "3001"
      FROM_NAME: Flora Marketplace
    compose:
      DATABASE_URL: "postgresql://${db_username|urlencode}:${db_password|urlencode}@{{ flora_db_host }}:5432/flora_db"
      SMTP_USER: "${gmail_user}"
      SMTP_PASS: "${gmail_password}"
    required:
      - DATABASE_URL
      - STRIPE_SECRET_KEY
  no_log: true

- name: A few named parameters, with explicit key names
  flora.deploy.ssm_env:
    dest: /srv/app/.env
    names:
      - /shared/sentry_dsn
      - /flora/prod/stripe_webhook_secret
    rename:
      sentry_dsn: SENTRY_DSN
      stripe_webhook_secret: STRIPE_WEBHOOK_SIGNING_SECRET
"""

RETURN = r"""
dest:
  description: The env file.
  returned: always
  type: str
  sample: /home/ubuntu/Flora/shared/backend.env
keys:
  description: The keys in the file, sorted. Never the values.
  returned: always
  type: list
  elements: str
  sample: [DATABASE_URL, NODE_ENV, STRIPE_SECRET_KEY]
count:
  description: Number of keys in the file.
  returned: always
  type: int
  sample: 27
checksum:
  description: SHA-256 of the rendered file content.
  returned: always
  type: str
  sample: 5b2c4f...
keys_added:
  description: Keys that are new compared with the previous file.
  returned: always
  type: list
  elements: str
keys_removed:
  description: Keys of the previous file that are gone.
  returned: always
  type: list
  elements: str
keys_changed:
  description: Keys whose values changed.
  returned: always
  type: list
  elements: str
parameters_read:
  description: Number of SSM parameters read.
  returned: always
  type: int
  sample: 17
api_calls:
  description: Number of SSM API requests made (pages and batches, not counting retries).
  returned: always
  type: int
  sample: 2
backup_file:
  description: The copy of the previous file, when O(backup=true) and the file changed.
  returned: changed and O(backup=true)
  type: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.module_exit import exit_json_without_final_collection
from ansible_collections.flora.deploy.plugins.module_utils.ssm_env_file import (
    ENV_FILE_ARGUMENT_SPEC,
    ENV_FILE_REQUIRED_ONE_OF,
    check_sdk,
    render_env_from_ssm,
)


def main():
    module = AnsibleAWSModule(
        argument_spec=ENV_FILE_ARGUMENT_SPEC,
        required_one_of=ENV_FILE_REQUIRED_ONE_OF,
        supports_check_mode=True,
        # The host's boto3 is checked against what these calls need (check_sdk), not amazon.aws's minimum.
        check_boto3=False,
    )
    check_sdk(module)
    exit_json_without_final_collection(module, **render_env_from_ssm(module, module.params))


if __name__ == "__main__":
    main()
