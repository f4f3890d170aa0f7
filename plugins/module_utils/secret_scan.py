# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Find backend secrets in a public build before it is published.

The secrets are the SecureString parameters under an environment's path that the caller may read, and the values
of the keys of env files (the backend's ``.env`` beside the build) whose names say they are secret. Each is looked
for in every text file of the build (scripts, styles, HTML, JSON, source maps, SVG...), as written and as a JSON
or JavaScript string literal escapes it. What is found is named by parameter or key and file; never by value.
"""

from __future__ import annotations

import json
import os
import re
import typing as t

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.flora.deploy.plugins.module_utils.access_denied import DENIAL_CODES
from ansible_collections.flora.deploy.plugins.module_utils.envfile import parse_env_text

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # Handled by AnsibleAWSModule

# Keys of an env file whose values are secrets: the backend's SMTP_PASS, JWT_SECRET, STRIPE_SECRET_KEY,
# DATABASE_URL (it holds the database password)... and not STRIPE_PUBLISHABLE_KEY or AUTH0_DOMAIN.
SECRET_KEY_PATTERN = r"(?i)(SECRET|PASS|TOKEN|PRIVATE|CREDENTIAL|API_KEY|DATABASE_URL)"
# Shorter values match by chance.
MIN_LENGTH = 8
TEXT_CONTENT_TYPES = ("text/", "application/json", "application/xml", "application/manifest+json", "image/svg+xml")


class SecretScanError(Exception):
    pass


def is_text(content_type: str) -> bool:
    return content_type.startswith(TEXT_CONTENT_TYPES)


def encoded_forms(value: str) -> set[bytes]:
    """The bytes a value takes in a build: as written, and inside a JSON or JavaScript string literal."""
    return {value.encode("utf-8"), json.dumps(value)[1:-1].encode("utf-8")}


def env_file_secrets(path: str, key_pattern: str = SECRET_KEY_PATTERN) -> dict[str, str]:
    """{'<KEY> in <path>': value} for the keys of the env file at path that match key_pattern; {} without the file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            parsed = parse_env_text(handle.read())
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise SecretScanError(f"Cannot read {path}: {e}") from e
    pattern = re.compile(key_pattern)
    return {f"{key} in {path}": value for key, value in parsed.items() if pattern.search(key)}


def read_secure_parameters(client: t.Any, path: str) -> dict[str, str]:
    """{name: value} of every SecureString parameter under path (recursively), decrypted."""
    paginator = client.get_paginator("get_parameters_by_path")
    pages = paginator.paginate(
        Path=path,
        Recursive=True,
        WithDecryption=True,
        ParameterFilters=[{"Key": "Type", "Values": ["SecureString"]}],
    )
    return {item["Name"]: item["Value"] for page in pages for item in page.get("Parameters", [])}


def find_secrets(
    files: t.Iterable[tuple[str, str]], secrets: t.Mapping[str, str], min_length: int = MIN_LENGTH
) -> dict[str, list[str]]:
    """{secret name: the paths holding its value}, over files as (path in the build, file to read)."""
    wanted = {name: encoded_forms(value) for name, value in secrets.items() if len(value) >= min_length}
    found: dict[str, list[str]] = {}
    if not wanted:
        return found
    for path, source in files:
        with open(source, "rb") as handle:
            data = handle.read()
        for name, forms in wanted.items():
            if any(form in data for form in forms):
                found.setdefault(name, []).append(path)
    return found


def describe_findings(found: t.Mapping[str, t.Sequence[str]]) -> str:
    """One sentence per secret found, naming it and its files."""
    return "; ".join(f"the value of {name} is in {', '.join(sorted(paths))}" for name, paths in sorted(found.items()))


def scannable_files(files: t.Iterable[t.Any]) -> list[tuple[str, str]]:
    """(path, source) of the build files (s3_publish.LocalFile) whose content is text."""
    return [(item.path, item.source) for item in files if is_text(item.content_type) and os.path.isfile(item.source)]


# Options of the modules that scan a build before publishing it.
SECRET_SCAN_ARGUMENT_SPEC = {
    # Where secrets are, not secrets.
    "secret_parameters_path": {"type": "str", "no_log": False},
    "secret_env_files": {"type": "list", "elements": "path", "default": [], "no_log": False},
    "secret_env_keys": {"type": "str", "default": SECRET_KEY_PATTERN, "no_log": False},
    "secret_scan_required": {"type": "bool", "default": False, "no_log": False},
}


def start_reading_secure_parameters(module: t.Any, pool: t.Any) -> t.Any:
    """The SecureStrings under O(secret_parameters_path), read on pool while the bucket is; None without a path."""
    path = module.params["secret_parameters_path"]
    if not path:
        return None

    def read() -> dict[str, str]:
        # The client is made on pool too: the bucket's listing need not wait for it.
        return read_secure_parameters(module.client("ssm", retry_decorator=AWSRetry.jittered_backoff()), path)

    return pool.submit(read)


def nothing_to_look_for(params: t.Mapping[str, t.Any], readable: bool | None) -> str:
    """Why a scan that was asked for had no secret to look for."""
    reasons = []
    if readable is False:
        path = params["secret_parameters_path"]
        reasons.append(f"this caller may not read the SecureString parameters under {path} (ssm:GetParametersByPath)")
    elif readable:
        reasons.append(f"there is no SecureString parameter under {params['secret_parameters_path']}")
    if params["secret_env_files"]:
        files = ", ".join(params["secret_env_files"])
        reasons.append(f"no env file of {files} exists or has a key matching secret_env_keys")
    return "; ".join(reasons) + "."


def check_build_for_secrets(module: t.Any, files: t.Iterable[t.Any], pending: t.Any) -> dict[str, t.Any]:
    """Fail the module, before anything is written, when a text file of the build holds a secret; else what was
    scanned. A caller that may not read the parameter path (a deployer with least privilege) scans the env files."""
    params = module.params
    secrets: dict[str, str] = {}
    readable = None
    if pending is not None:
        readable = True
        path = params["secret_parameters_path"]
        try:
            secrets.update((f"SecureString parameter {name}", value) for name, value in pending.result().items())
        except is_boto3_error_code(sorted(DENIAL_CODES)):
            readable = False
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to read the SecureString parameters under {path}; nothing was written")
    try:
        for env_file in params["secret_env_files"]:
            secrets.update(env_file_secrets(env_file, params["secret_env_keys"]))
    except (SecretScanError, re.error) as e:
        module.fail_json(msg=f"{e}; nothing was written")
    # Never in any output, whatever happens next (shorter values would mask common words).
    module.no_log_values.update(value for value in secrets.values() if len(value) >= MIN_LENGTH)
    if not secrets and (pending is not None or params["secret_env_files"]):
        unchecked = f"The build was not checked for secrets: {nothing_to_look_for(params, readable)}"
        if params["secret_scan_required"]:
            module.fail_json(msg=f"{unchecked} Nothing was written (secret_scan_required).")
        # AnsibleAWSModule.warn would also hand the warning to exit_json, which ansible-core 2.19 reports as
        # deprecated beside it; the AnsibleModule underneath reports it once.
        getattr(module, "_module", module).warn(unchecked)
    scanned = scannable_files(files)
    found = find_secrets(scanned, secrets)
    if found:
        module.fail_json(
            msg=f"The build holds secrets and was not published: {describe_findings(found)}. Nothing was written.",
            secrets_found=[{"secret": name, "files": sorted(paths)} for name, paths in sorted(found.items())],
        )
    return {
        "secrets": len(secrets),
        "files": len(scanned),
        "parameters_readable": readable,
    }
