"""module_utils/secret_scan: which secrets are looked for, and where they are found, on real files."""

from __future__ import annotations

import json

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import LocalFile
from ansible_collections.flora.deploy.plugins.module_utils.secret_scan import (
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
