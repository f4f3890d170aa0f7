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
    back byte-for-byte through npm C(dotenv) v16 and python-dotenv.
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
notes:
  - Each value is written in single quotes, double quotes with C(\n) escapes, or unquoted, whichever both
    parsers read back unchanged. A value neither can represent (a single quote together with a double
    quote or a backslash, or C(${...}), which python-dotenv expands) fails the task naming its key.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
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

import grp
import hashlib
import os
import pwd

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.flora.deploy.plugins.module_utils.envfile import (
    EnvFileError,
    diff_keys,
    masked_listing,
    parse_env_text,
    render_env_file,
    write_atomically,
)
from ansible_collections.flora.deploy.plugins.module_utils.ssm_env import (
    EnvMapping,
    EnvMappingError,
    build_env,
    fetch_parameters_by_name,
    fetch_parameters_by_path,
    secret_values,
)


def parse_mode(module, mode):
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        module.fail_json(msg=f"mode must be an octal number such as '0600', got {mode!r}")


def resolve_id(module, value, database, kind):
    if value is None:
        return -1
    if str(value).isdigit():
        return int(value)
    try:
        return database(value)[2]
    except KeyError:
        module.fail_json(msg=f"{kind} {value!r} does not exist on this host")


def fetch_parameters(module, client):
    parameters = []
    calls = 0
    for path in module.params["paths"]:
        try:
            found, path_calls = fetch_parameters_by_path(client, path, module.params["recursive"])
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "AccessDeniedException":
                module.fail_json_aws(e, msg=f"Access denied reading parameters under {path}")
            module.fail_json_aws(e, msg=f"Failed to read parameters under {path}")
        except botocore.exceptions.BotoCoreError as e:
            module.fail_json_aws(e, msg=f"Failed to read parameters under {path}")
        calls += path_calls
        if not found:
            module.fail_json(
                msg=f"No parameters found under {path} in region {module.region}: the path is unknown or empty"
            )
        parameters.extend(found)
    if module.params["names"]:
        try:
            found, missing, name_calls = fetch_parameters_by_name(client, module.params["names"])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg="Failed to read the named parameters")
        calls += name_calls
        if missing:
            module.fail_json(msg=f"Parameters not found: {', '.join(sorted(missing))}")
        parameters.extend(found)
    return parameters, calls


def read_existing(module, dest):
    try:
        with open(dest, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        module.fail_json(msg=f"Cannot read the existing {dest}: {e}")


def attributes_differ(dest, mode, uid, gid):
    stat = os.stat(dest)
    return (stat.st_mode & 0o7777) != mode or (uid != -1 and stat.st_uid != uid) or (gid != -1 and stat.st_gid != gid)


def main():
    argument_spec = dict(
        dest=dict(type="path", required=True),
        paths=dict(type="list", elements="str", default=[]),
        recursive=dict(type="bool", default=True),
        names=dict(type="list", elements="str", default=[]),
        rename=dict(type="dict", default={}),
        exclude=dict(type="list", elements="str", default=[]),
        literals=dict(type="dict", default={}, no_log=True),
        compose=dict(type="dict", default={}),
        required=dict(type="list", elements="str", default=[]),
        mode=dict(type="raw", default="0600"),
        owner=dict(type="str"),
        group=dict(type="str"),
        backup=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_one_of=[["paths", "names"]],
        supports_check_mode=True,
    )
    dest = module.params["dest"]
    mode = parse_mode(module, module.params["mode"])
    uid = resolve_id(module, module.params["owner"], pwd.getpwnam, "user")
    gid = resolve_id(module, module.params["group"], grp.getgrnam, "group")
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        module.fail_json(msg=f"The directory of {dest} does not exist")

    client = module.client(
        "ssm",
        retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=["ThrottlingException"]),
    )
    parameters, calls = fetch_parameters(module, client)
    module.no_log_values.update(secret_values(parameters))

    mapping = EnvMapping(
        rename=module.params["rename"],
        exclude=module.params["exclude"],
        literals=module.params["literals"],
        compose=module.params["compose"],
        required=module.params["required"],
    )
    try:
        values = build_env(parameters, mapping)
        content = render_env_file(values)
    except (EnvMappingError, EnvFileError) as e:
        module.fail_json(msg=f"Cannot render {dest}: {e}", problems=e.problems)

    existing = read_existing(module, dest)
    before = parse_env_text(existing) if existing is not None else {}
    added, removed, changed_keys = diff_keys(before, values)
    content_changed = existing != content
    changed = content_changed or attributes_differ(dest, mode, uid, gid)

    result = dict(
        changed=changed,
        dest=dest,
        keys=sorted(values),
        count=len(values),
        checksum=hashlib.sha256(content.encode("utf-8")).hexdigest(),
        keys_added=added,
        keys_removed=removed,
        keys_changed=changed_keys,
        parameters_read=len(parameters),
        api_calls=calls,
    )
    if module._diff:
        result["diff"] = dict(
            before_header=dest,
            after_header=dest,
            before=masked_listing(before),
            after=masked_listing(values, {key: "changed" for key in changed_keys}),
        )

    if changed and not module.check_mode:
        if content_changed:
            if module.params["backup"] and existing is not None:
                result["backup_file"] = module.backup_local(dest)
            write_atomically(dest, content, mode, uid, gid)
        else:
            os.chmod(dest, mode)
            if uid != -1 or gid != -1:
                os.chown(dest, uid, gid)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
