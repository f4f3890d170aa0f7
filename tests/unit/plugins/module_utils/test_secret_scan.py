"""module_utils/secret_scan: which secrets are looked for, and where they are found, on real files."""

from __future__ import annotations

import json
from concurrent.futures import Future

import pytest
from botocore.exceptions import ClientError

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import LocalFile
from ansible_collections.flora.deploy.plugins.module_utils.secret_scan import (
    SECRET_KEY_PATTERN,
    check_build_for_secrets,
    describe_findings,
    encoded_forms,
    env_file_secrets,
    find_secrets,
    is_text,
    scannable_files,
)

BACKEND_ENV = """NODE_ENV=production
PORT=3001
DATABASE_URL=postgresql://flora_app:p%40ss@db.example:5432/flora_db
JWT_SECRET="jwt=secret\\\\with\\\\backslashes"
SMTP_PASS='app password with spaces'
STRIPE_SECRET_KEY=sk_test_51FloraSecretKey
STRIPE_PUBLISHABLE_KEY=pk_test_51FloraPublishable
AUTH0_DOMAIN=flora-demo.au.auth0.com
FRONTEND_URL=https://flora.example
GEMINI_API_KEY=AIzaFloraGeminiKey
"""


def test_the_backend_env_files_secret_keys_count_and_its_public_ones_do_not(tmp_path):
    env = tmp_path / ".env"
    env.write_text(BACKEND_ENV)
    secrets = env_file_secrets(str(env))
    assert sorted(name.split(" in ")[0] for name in secrets) == [
        "DATABASE_URL",
        "GEMINI_API_KEY",
        "JWT_SECRET",
        "SMTP_PASS",
        "STRIPE_SECRET_KEY",
    ]
    # As npm dotenv reads the file: quotes removed.
    assert secrets[f"SMTP_PASS in {env}"] == "app password with spaces"


def test_a_missing_env_file_has_no_secrets(tmp_path):
    assert env_file_secrets(str(tmp_path / "missing.env")) == {}


def test_a_value_is_found_as_written_and_as_a_javascript_string_escapes_it(tmp_path):
    value = 'auth0-secret-"quoted"\\path'
    assert encoded_forms(value) == {value.encode(), b'auth0-secret-\\"quoted\\"\\\\path'}
    raw, escaped, clean = tmp_path / "raw.html", tmp_path / "escaped.js", tmp_path / "clean.js"
    raw.write_text(f"<p>{value}</p>")
    escaped.write_text(f"const s = {json.dumps(value)};")
    clean.write_text('const s = "auth0-secret-";')
    files = [("raw.html", str(raw)), ("escaped.js", str(escaped)), ("clean.js", str(clean))]
    assert find_secrets(files, {"secret A": value}) == {"secret A": ["raw.html", "escaped.js"]}


def test_values_shorter_than_eight_characters_are_not_looked_for(tmp_path):
    bundle = tmp_path / "index.js"
    bundle.write_text("if (mode === 'true') { port = 3001 }")
    assert find_secrets([("index.js", str(bundle))], {"short": "true", "port": "3001"}) == {}
    assert find_secrets([("index.js", str(bundle))], {"long": "port = 3001"}) == {"long": ["index.js"]}


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/javascript; charset=utf-8", True),
        ("text/html; charset=utf-8", True),
        ("application/json", True),
        ("image/svg+xml", True),
        ("application/manifest+json", True),
        ("image/jpeg", False),
        ("font/woff2", False),
        ("application/wasm", False),
    ],
)
def test_only_text_files_are_scanned(content_type, text):
    assert is_text(content_type) is text


def test_scannable_files_are_the_text_files_of_the_build(tmp_path):
    (tmp_path / "a.js").write_text("x")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8")
    files = [
        LocalFile("a.js", str(tmp_path / "a.js"), 1, "0", "text/javascript; charset=utf-8", "public"),
        LocalFile("b.jpg", str(tmp_path / "b.jpg"), 2, "0", "image/jpeg", "public"),
    ]
    assert scannable_files(files) == [("a.js", str(tmp_path / "a.js"))]


def test_findings_name_the_secret_and_its_files_never_the_value():
    found = {"SecureString parameter /flora/prod/jwt_secret": ["b.js", "a.js"], "SMTP_PASS in /app/.env": ["c.txt"]}
    assert describe_findings(found) == (
        "the value of SMTP_PASS in /app/.env is in c.txt; "
        "the value of SecureString parameter /flora/prod/jwt_secret is in a.js, b.js"
    )


class ScanningModule:
    """What check_build_for_secrets uses of AnsibleAWSModule: its parameters, warnings and values to hide."""

    def __init__(self, path: str | None, env_files: list[str], required: bool = False):
        self.params = {
            "secret_parameters_path": path,
            "secret_env_files": env_files,
            "secret_env_keys": SECRET_KEY_PATTERN,
            "secret_scan_required": required,
        }
        self.warnings: list[str] = []
        self.no_log_values: set[str] = set()

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def fail_json(self, msg: str, **kwargs) -> None:
        raise Failed(msg)


class Failed(Exception):
    """fail_json was called."""


def read(parameters: dict | None = None, denied: bool = False) -> Future:
    """The parameters' read, done: their values, or AWS's AccessDenied."""
    future: Future = Future()
    if denied:
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}
        future.set_exception(ClientError(error, "GetParametersByPath"))
    else:
        future.set_result(parameters or {})
    return future


def build(tmp_path) -> list[LocalFile]:
    (tmp_path / "index.js").write_text("console.log('flora')")
    return [LocalFile("index.js", str(tmp_path / "index.js"), 20, "0", "text/javascript; charset=utf-8", "public")]


def test_a_scan_that_may_not_read_the_parameters_scans_the_env_file(tmp_path):
    env_file = tmp_path / "backend.env"
    env_file.write_text(BACKEND_ENV)
    module = ScanningModule("/flora/prod", [str(env_file)])
    scan = check_build_for_secrets(module, build(tmp_path), read(denied=True))
    assert scan == {"secrets": 5, "files": 1, "parameters_readable": False}
    assert module.warnings == []
    assert "sk_test_51FloraSecretKey" in module.no_log_values


def test_a_scan_with_nothing_to_look_for_warns_that_the_build_was_not_checked(tmp_path):
    missing = str(tmp_path / "backend.env")
    module = ScanningModule("/flora/prod", [missing])
    scan = check_build_for_secrets(module, build(tmp_path), read(denied=True))
    assert scan == {"secrets": 0, "files": 1, "parameters_readable": False}
    assert module.warnings == [
        (
            "The build was not checked for secrets: this caller may not read the SecureString parameters under "
            f"/flora/prod (ssm:GetParametersByPath); no env file of {missing} exists or has a key matching "
            "secret_env_keys."
        )
    ]

    readable = ScanningModule("/flora/dev", [])
    assert check_build_for_secrets(readable, build(tmp_path), read({}))["parameters_readable"] is True
    assert readable.warnings == [
        "The build was not checked for secrets: there is no SecureString parameter under /flora/dev."
    ]

    found = ScanningModule("/flora/prod", [])
    scan = check_build_for_secrets(found, build(tmp_path), read({"/flora/prod/jwt_secret": "jwt-secret-value"}))
    assert scan == {"secrets": 1, "files": 1, "parameters_readable": True}
    assert found.warnings == []


def test_a_scan_of_env_files_only_reports_no_parameters_read(tmp_path):
    module = ScanningModule(None, [])
    assert check_build_for_secrets(module, build(tmp_path), None) == {
        "secrets": 0,
        "files": 1,
        "parameters_readable": None,
    }
    assert module.warnings == []


def test_a_required_scan_with_nothing_to_look_for_fails(tmp_path):
    module = ScanningModule("/flora/prod", [], required=True)
    with pytest.raises(Failed) as failed:
        check_build_for_secrets(module, build(tmp_path), read(denied=True))
    assert str(failed.value) == (
        "The build was not checked for secrets: this caller may not read the SecureString parameters under "
        "/flora/prod (ssm:GetParametersByPath). Nothing was written (secret_scan_required)."
    )
    env_file = tmp_path / "backend.env"
    env_file.write_text(BACKEND_ENV)
    scanned = ScanningModule("/flora/prod", [str(env_file)], required=True)
    assert check_build_for_secrets(scanned, build(tmp_path), read(denied=True))["secrets"] == 5
