# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render an env file from Parameter Store on the host: the work of flora.deploy.ssm_env, shared with
flora.deploy.redeploy_preflight. Takes the module for its failures, check mode, diff mode and secret masking.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
from collections.abc import Callable
from typing import Any

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.warnings import warn
from ansible_collections.amazon.aws.plugins.module_utils.botocore import HAS_BOTO3, gather_sdk_versions
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.flora.deploy.plugins.module_utils.access_denied import ENV_FILE_STATEMENTS, denial_message
from ansible_collections.flora.deploy.plugins.module_utils.envfile import (
    READERS,
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

# flora.deploy.ssm_env's options, also the suboptions of redeploy_preflight's env.
ENV_FILE_ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    paths=dict(type="list", elements="str", default=[]),
    recursive=dict(type="bool", default=True),
    names=dict(type="list", elements="str", default=[]),
    rename=dict(type="dict", default={}),
    exclude=dict(type="list", elements="str", default=[]),
    # Settings, not secrets: masking a value such as "3001" would also mask it inside checksums and commits.
    literals=dict(type="dict", default={}),
    compose=dict(type="dict", default={}),
    required=dict(type="list", elements="str", default=[]),
    mode=dict(type="raw", default="0600"),
    owner=dict(type="str"),
    group=dict(type="str"),
    backup=dict(type="bool", default=False),
    reader=dict(type="str", choices=list(READERS), default="dotenv"),
)
ENV_FILE_REQUIRED_ONE_OF = [["paths", "names"]]

# These modules run on the app host, where boto3 is usually the distribution's, older than amazon.aws's general
# minimum (1.34); they need only GetParameters and GetParametersByPath, which every boto3 has, and are tested
# with Debian 12's python3-boto3. Pass check_boto3=False to AnsibleAWSModule and call check_sdk instead.
MINIMUM_BOTO3_VERSION = "1.26.0"
MINIMUM_BOTOCORE_VERSION = "1.29.0"


def sdk_warning(versions: dict) -> str | None:
    """The warning for boto3 or botocore older than the oldest tested here, or None."""
    old = [
        f"{name} {versions[f'{name}_version']}"
        for name, minimum in (("boto3", MINIMUM_BOTO3_VERSION), ("botocore", MINIMUM_BOTOCORE_VERSION))
        if not check_version_at_least(versions[f"{name}_version"], minimum)
    ]
    if not old:
        return None
    return (
        f"{' and '.join(old)} on this host: older than the oldest tested with the Parameter Store modules"
        f" (boto3 {MINIMUM_BOTO3_VERSION}, botocore {MINIMUM_BOTOCORE_VERSION})"
    )


def check_version_at_least(version: str, minimum: str) -> bool:
    """Compare release numbers such as 1.29.27 (a part that is not a number, as in 1.40.0rc1, counts as 0)."""

    def parts(text: str) -> tuple:
        return tuple(int(p) if p.isdigit() else 0 for p in text.split(".")[:3])

    return parts(version) >= parts(minimum)


def check_sdk(module) -> None:
    """Fail when boto3 is missing; warn, once and without amazon.aws's deprecated injection, when it is too old."""
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("botocore and boto3"))
    message = sdk_warning(gather_sdk_versions())
    if message:
        warn(message)


def ssm_client(module) -> Any:
    return module.client(
        "ssm",
        retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=["ThrottlingException"]),
    )


def parse_mode(module, mode) -> int:
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        module.fail_json(msg=f"mode must be an octal number such as '0600', got {mode!r}")


def resolve_id(module, value, database, kind) -> int:
    if value is None:
        return -1
    if str(value).isdigit():
        return int(value)
    try:
        return database(value)[2]
    except KeyError:
        module.fail_json(msg=f"{kind} {value!r} does not exist on this host")


def fetch_parameters(module, client, options: dict) -> tuple[list, int]:
    parameters = []
    calls = 0
    for path in filter(None, options["paths"]):
        try:
            found, path_calls = fetch_parameters_by_path(client, path, options["recursive"])
        except botocore.exceptions.ClientError as e:
            explained = denial_message(module, e, f"the parameters under {path}", ENV_FILE_STATEMENTS)
            if explained:
                module.fail_json_aws(e, msg=f"Access denied reading parameters under {path}: {explained}")
            module.fail_json_aws(e, msg=f"Failed to read parameters under {path}")
        except botocore.exceptions.BotoCoreError as e:
            module.fail_json_aws(e, msg=f"Failed to read parameters under {path}")
        calls += path_calls
        if not found:
            module.fail_json(
                msg=f"No parameters found under {path} in region {module.region}: the path is unknown or empty"
            )
        parameters.extend(found)
    names = [name for name in options["names"] if name]
    if names:
        try:
            found, missing, name_calls = fetch_parameters_by_name(client, names)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            explained = denial_message(module, e, f"the parameters {', '.join(names)}", ENV_FILE_STATEMENTS)
            module.fail_json_aws(
                e,
                msg=f"Access denied reading the named parameters: {explained}"
                if explained
                else "Failed to read the named parameters",
            )
        calls += name_calls
        if missing:
            module.fail_json(msg=f"Parameters not found: {', '.join(sorted(missing))}")
        parameters.extend(found)
    return parameters, calls


def read_existing(module, dest: str) -> str | None:
    try:
        with open(dest, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        module.fail_json(msg=f"Cannot read the existing {dest}: {e}")


def attributes_differ(dest: str, mode: int, uid: int, gid: int) -> bool:
    stat = os.stat(dest)
    return (stat.st_mode & 0o7777) != mode or (uid != -1 and stat.st_uid != uid) or (gid != -1 and stat.st_gid != gid)


def empty_sources_problem(options: dict) -> str | None:
    """Why a render with these options must not run: no path and no name to read (empty entries count as none).
    required_one_of cannot tell an empty list from a missing one, and paths: "{{ x | default([]) }}" gives []."""
    if any(options["paths"]) or any(options["names"]):
        return None
    return (
        f"Nothing to read for {options['dest']}: paths and names are both empty, so every secret would be missing. "
        "The file was left as it was."
    )


def render_env_from_ssm(module, options: dict, before_write: Callable[[], None] | None = None) -> dict[str, Any]:
    """Read the parameters, render the file and write it when it changes (not in check mode).

    options holds ENV_FILE_ARGUMENT_SPEC's values. Returns ssm_env's result: changed, the keys (never the
    values) and, in diff mode, the diff with masked values. Fails the module on any problem, before writing.
    before_write, when given, is called once everything is read and rendered, before the file is written (in
    check mode too); a failure in it leaves the file as it was.
    """
    dest = options["dest"]
    problem = empty_sources_problem(options)
    if problem:
        module.fail_json(msg=problem)
    mode = parse_mode(module, options["mode"])
    uid = resolve_id(module, options["owner"], pwd.getpwnam, "user")
    gid = resolve_id(module, options["group"], grp.getgrnam, "group")
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        module.fail_json(msg=f"The directory of {dest} does not exist")

    parameters, calls = fetch_parameters(module, ssm_client(module), options)
    module.no_log_values.update(secret_values(parameters))
    mapping = EnvMapping(
        rename=options["rename"],
        exclude=options["exclude"],
        literals=options["literals"],
        compose=options["compose"],
        required=options["required"],
    )
    try:
        values = build_env(parameters, mapping)
        content = render_env_file(values, options["reader"])
    except (EnvMappingError, EnvFileError) as e:
        module.fail_json(msg=f"Cannot render {dest}: {e}", problems=e.problems)

    existing = read_existing(module, dest)
    before = parse_env_text(existing, options["reader"]) if existing is not None else {}
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
    if before_write is not None:
        before_write()
    if changed and not module.check_mode:
        if content_changed:
            if options["backup"] and existing is not None:
                result["backup_file"] = module.backup_local(dest)
            write_atomically(dest, content, mode, uid, gid)
        else:
            os.chmod(dest, mode)
            if uid != -1 or gid != -1:
                os.chown(dest, uid, gid)
    return result
