from __future__ import annotations

import json
import os

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.frontend_env import (
    ENVIRONMENT_SOURCE,
    EnvValue,
    describe_problems,
    env_problems,
    is_loopback_url,
    read_vite_env,
    vite_env_files,
)

REQUIRED = ["VITE_API_URL", "VITE_AUTH0_DOMAIN"]
LOOPBACK = "on the build machine's loopback, which each visitor's browser would take for its own machine"


def write(directory, name: str, text: str) -> None:
    (directory / name).write_text(text)


def test_vite_env_files_lowest_priority_first():
    assert vite_env_files("production") == [".env", ".env.local", ".env.production", ".env.production.local"]
    assert vite_env_files("staging")[2:] == [".env.staging", ".env.staging.local"]


def test_later_files_win_and_the_environment_wins_over_every_file(tmp_path):
    write(tmp_path, ".env", "VITE_API_URL='https://shop.flora.example/api'\nVITE_APP_NAME=Flora\nSECRET=x\n")
    write(tmp_path, ".env.local", "VITE_APP_NAME=Flora (local)\n")
    write(tmp_path, ".env.production", "VITE_API_URL=http://localhost:3001/api\n")
    write(tmp_path, ".env.development", "VITE_AUTH0_DOMAIN=dev.example\n")
    values = read_vite_env(str(tmp_path), "production", {"VITE_AUTH0_DOMAIN": "flora.au.auth0.com", "PATH": "/bin"})
    assert values == {
        "VITE_API_URL": EnvValue("http://localhost:3001/api", ".env.production"),
        "VITE_APP_NAME": EnvValue("Flora (local)", ".env.local"),
        "VITE_AUTH0_DOMAIN": EnvValue("flora.au.auth0.com", ENVIRONMENT_SOURCE),
    }


def test_values_are_read_as_vite_reads_them(tmp_path):
    # ssm_env's reader=vite quoting: single quotes, a # inside quotes is not a comment.
    write(tmp_path, ".env", "VITE_STRIPE_PUBLISHABLE_KEY='pk_test_51#Flora' # comment\nexport VITE_X=1\n")
    values = read_vite_env(str(tmp_path), "production", {})
    assert values["VITE_STRIPE_PUBLISHABLE_KEY"].value == "pk_test_51#Flora"


def test_no_env_files_and_no_environment_is_nothing(tmp_path):
    assert read_vite_env(str(tmp_path), "production", {}) == {}


@pytest.mark.parametrize(
    "value",
    [
        "http://localhost:3001/api",
        "https://LOCALHOST/api",
        "http://app.localhost:5173",
        "http://127.0.0.1:3001/api",
        "http://127.1.2.3/api",
        "http://[::1]:3001/api",
        "http://0.0.0.0:3001",
        "ws://localhost:3001/socket",
        " http://localhost:3001/api ",
    ],
)
def test_loopback_urls(value):
    assert is_loopback_url(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "https://shop.flora.example/api",
        "/api",
        "localhost",
        "flora-demo.au.auth0.com",
        "https://localhost.flora.example/api",
        "http://10.0.0.5:3001/api",
        "mailto:orders@localhost",
        "http://[::1",
        "",
    ],
)
def test_other_values_are_not_loopback_urls(value):
    assert is_loopback_url(value) is False


def test_problems_name_each_key():
    values = {
        "VITE_API_URL": EnvValue("http://localhost:3001/api", ".env.production"),
        "VITE_APP_URL": EnvValue("http://127.0.0.1:8080", ENVIRONMENT_SOURCE),
        "VITE_STRIPE_PUBLISHABLE_KEY": EnvValue("  ", ".env"),
    }
    assert env_problems(values, ["VITE_API_URL", "VITE_AUTH0_DOMAIN", "VITE_STRIPE_PUBLISHABLE_KEY"]) == [
        "VITE_AUTH0_DOMAIN is not set",
        "VITE_STRIPE_PUBLISHABLE_KEY is empty (.env)",
        f"VITE_API_URL is http://localhost:3001/api (.env.production), {LOOPBACK}",
        f"VITE_APP_URL is http://127.0.0.1:8080 (the build's environment), {LOOPBACK}",
    ]


def test_a_loopback_url_on_the_sites_own_origin_is_allowed():
    """A site served from the build machine (a local stand-in of the CDN) calls itself; other loopback URLs fail."""
    values = {
        "VITE_API_URL": EnvValue("http://127.0.0.1:8080/api", ".env"),
        "VITE_APP_URL": EnvValue("http://127.0.0.1:8080", ".env"),
        "VITE_AUTH_URL": EnvValue("http://127.0.0.1:3001/auth", ".env"),
    }
    assert env_problems(values, [], site_url="http://127.0.0.1:8080/") == [
        f"VITE_AUTH_URL is http://127.0.0.1:3001/auth (.env), {LOOPBACK}"
    ]
    assert len(env_problems(values, [])) == 3


def test_a_complete_env_has_no_problems():
    values = {
        "VITE_API_URL": EnvValue("https://shop.flora.example/api", ".env"),
        "VITE_AUTH0_DOMAIN": EnvValue("flora.au.auth0.com", ".env"),
    }
    assert env_problems(values, REQUIRED + REQUIRED) == []
    assert env_problems({}, []) == []


def test_the_message_says_where_vite_reads():
    message = describe_problems("/srv/Flora/apps/frontend", "production", ["VITE_API_URL is not set"])
    assert message == (
        "The build of /srv/Flora/apps/frontend would bake into its public bundle: VITE_API_URL is not set. Vite reads "
        ".env, .env.local, .env.production and .env.production.local there, then its environment, which wins."
    )


# The module's main()


@pytest.fixture
def module(monkeypatch, capsys):
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.flora.deploy.plugins.modules import frontend_env_check

    def run(args, environment):
        for key in [key for key in os.environ if key.startswith("VITE_")]:
            monkeypatch.delenv(key)
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        with patch_module_args({"_ansible_check_mode": False, **args}), pytest.raises(SystemExit):
            frontend_env_check.main()
        return json.loads(capsys.readouterr().out)

    return run


def test_module_passes_a_complete_env_and_reports_where_each_key_comes_from(module, tmp_path):
    write(tmp_path, ".env", "VITE_API_URL='https://shop.flora.example/api'\n")
    result = module({"src": str(tmp_path), "required": REQUIRED}, {"VITE_AUTH0_DOMAIN": "flora.au.auth0.com"})
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert result["keys"] == {"VITE_API_URL": ".env", "VITE_AUTH0_DOMAIN": ENVIRONMENT_SOURCE}


def test_module_fails_naming_the_keys(module, tmp_path):
    write(tmp_path, ".env", "VITE_API_URL='https://shop.flora.example/api'\n")
    write(tmp_path, ".env.production.local", "VITE_API_URL=http://localhost:3001/api\n")
    result = module({"src": str(tmp_path), "required": REQUIRED}, {})
    assert result["failed"] is True
    assert result["problems"] == [
        "VITE_AUTH0_DOMAIN is not set",
        f"VITE_API_URL is http://localhost:3001/api (.env.production.local), {LOOPBACK}",
    ]
    assert result["msg"] == describe_problems(str(tmp_path), "production", result["problems"])
    assert result["keys"] == {"VITE_API_URL": ".env.production.local"}


def test_module_refuses_a_missing_directory(module, tmp_path):
    result = module({"src": str(tmp_path / "nowhere")}, {})
    assert result["failed"] is True
    assert result["msg"] == f"{tmp_path / 'nowhere'} is not a directory"
