from __future__ import annotations

import math

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.ssm_env import (
    EnvMapping,
    EnvMappingError,
    Parameter,
    build_env,
    fetch_parameters_by_name,
    fetch_parameters_by_path,
    secret_values,
)


class FakeSSM:
    """Serves parameters the way GetParametersByPath / GetParameters page and batch them."""

    def __init__(self, parameters: dict[str, str]):
        self.parameters = parameters
        self.calls: list[tuple[str, dict]] = []

    def get_parameters_by_path(self, aws_retry=False, **kwargs):
        self.calls.append(("get_parameters_by_path", kwargs))
        path = kwargs["Path"].rstrip("/") + "/"
        names = sorted(
            n for n in self.parameters if n.startswith(path) and (kwargs["Recursive"] or "/" not in n[len(path) :])
        )
        start = int(kwargs.get("NextToken", 0))
        page = names[start : start + kwargs["MaxResults"]]
        response = {"Parameters": [{"Name": n, "Value": self.parameters[n], "Type": "String"} for n in page]}
        if start + kwargs["MaxResults"] < len(names):
            response["NextToken"] = str(start + kwargs["MaxResults"])
        return response

    def get_parameters(self, aws_retry=False, Names=(), WithDecryption=False):
        assert len(Names) <= 10
        self.calls.append(("get_parameters", {"Names": Names}))
        return {
            "Parameters": [
                {"Name": n, "Value": self.parameters[n], "Type": "SecureString"} for n in Names if n in self.parameters
            ],
            "InvalidParameters": [n for n in Names if n not in self.parameters],
        }


@pytest.mark.parametrize("count", [0, 1, 9, 10, 11, 17, 20, 21, 95])
def test_path_reads_cost_one_call_per_ten_parameters(count):
    client = FakeSSM({f"/flora/prod/p{i:03d}": str(i) for i in range(count)})
    found, calls = fetch_parameters_by_path(client, "flora/prod/", recursive=True)
    assert len(found) == count
    assert calls == max(1, math.ceil(count / 10)) == len(client.calls)
    assert all(call[1]["Path"] == "/flora/prod" and call[1]["WithDecryption"] for call in client.calls)


def test_recursive_flag_is_passed_through():
    client = FakeSSM({"/a/x": "1", "/a/deep/y": "2"})
    assert [p.name for p in fetch_parameters_by_path(client, "/a", recursive=False)[0]] == ["/a/x"]
    assert sorted(p.name for p in fetch_parameters_by_path(client, "/a", recursive=True)[0]) == ["/a/deep/y", "/a/x"]


def test_named_parameters_in_batches_of_ten_with_missing_reported():
    client = FakeSSM({f"/n/{i}": str(i) for i in range(23)})
    names = [f"/n/{i}" for i in range(23)] + ["/n/missing", "/n/0"]
    found, missing, calls = fetch_parameters_by_name(client, names)
    assert len(found) == 23
    assert missing == ["/n/missing"]
    assert calls == 3


FLORA = [
    Parameter("/flora/prod/db_username", "flora"),
    Parameter("/flora/prod/db_password", "p@ss/w:rd%", "SecureString"),
    Parameter("/flora/prod/gmail_user", "orders@flora.example"),
    Parameter("/flora/prod/gmail_password", "app pass", "SecureString"),
    Parameter("/flora/prod/stripe_secret_key", "sk_test", "SecureString"),
]


def mapping(**overrides):
    base = dict(rename={}, exclude=[], literals={}, compose={}, required=[])
    base.update(overrides)
    return EnvMapping(**base)


def test_flora_mapping_with_compose_aliases_and_literals():
    values = build_env(
        FLORA,
        mapping(
            exclude=["db_username", "/flora/prod/db_password"],
            literals={"FROM_NAME": "Flora Marketplace", "PORT": 3001},
            compose={
                "DATABASE_URL": "postgresql://${db_username}:${db_password|urlencode}@db.internal:5432/flora_db",
                "SMTP_USER": "${gmail_user}",
                "SMTP_PASS": "${ gmail_password }",
                "PRICE": "$$5",
            },
            required=["DATABASE_URL", "STRIPE_SECRET_KEY"],
        ),
    )
    assert values == {
        "DATABASE_URL": "postgresql://flora:p%40ss%2Fw%3Ard%25@db.internal:5432/flora_db",
        "GMAIL_USER": "orders@flora.example",
        "GMAIL_PASSWORD": "app pass",
        "STRIPE_SECRET_KEY": "sk_test",
        "SMTP_USER": "orders@flora.example",
        "SMTP_PASS": "app pass",
        "FROM_NAME": "Flora Marketplace",
        "PORT": "3001",
        "PRICE": "$5",
    }


def test_rename_by_short_or_full_name():
    values = build_env(FLORA[:3], mapping(rename={"gmail_user": "SMTP_USER", "/flora/prod/db_username": "DB_USER"}))
    assert set(values) == {"SMTP_USER", "DB_USER", "DB_PASSWORD"}


def test_every_missing_required_key_is_named_before_anything_is_written():
    with pytest.raises(EnvMappingError) as excinfo:
        build_env(FLORA, mapping(required=["STRIPE_SECRET_KEY", "JWT_SECRET", "GEMINI_API_KEY"]))
    assert excinfo.value.problems == ["required keys are missing: JWT_SECRET, GEMINI_API_KEY"]


def test_compose_with_a_missing_parameter_fails_instead_of_leaving_it_empty():
    with pytest.raises(EnvMappingError) as excinfo:
        build_env(FLORA, mapping(compose={"URL": "x://${db_user}:${nope|urlencode}@h"}))
    assert "compose URL: parameter 'db_user' was not found" in excinfo.value.problems
    assert "compose URL: parameter 'nope' was not found" in excinfo.value.problems


@pytest.mark.parametrize(
    "template, problem",
    [
        ("${db_username|base64}", "unknown filter 'base64'"),
        ("cost $5", "a '$' that does not start ${name}"),
        ("${db_username", "a '$' that does not start ${name}"),
    ],
)
def test_bad_templates(template, problem):
    with pytest.raises(EnvMappingError) as excinfo:
        build_env(FLORA, mapping(compose={"X": template}))
    assert any(problem in p for p in excinfo.value.problems), excinfo.value.problems


def test_two_parameters_on_one_key_are_both_named():
    params = [Parameter("/flora/prod/a/token", "1"), Parameter("/flora/prod/b/token", "2")]
    with pytest.raises(EnvMappingError) as excinfo:
        build_env(params, mapping())
    assert excinfo.value.problems == [
        "key TOKEN would come from more than one place: parameter /flora/prod/a/token and parameter /flora/prod/b/token"
    ]


def test_literal_clashing_with_a_parameter_is_refused():
    with pytest.raises(EnvMappingError) as excinfo:
        build_env(FLORA, mapping(literals={"GMAIL_USER": "x"}))
    assert "GMAIL_USER would come from more than one place: parameter /flora/prod/gmail_user and literals" in str(
        excinfo.value
    )


def test_short_name_ambiguity_is_reported():
    params = [Parameter("/a/token", "1"), Parameter("/b/token", "2")]
    with pytest.raises(EnvMappingError) as excinfo:
        build_env(params, mapping(exclude=["token"]))
    assert "exclude: 'token' is ambiguous: it names /a/token, /b/token; use the full name" in excinfo.value.problems


def test_parameter_names_that_are_not_env_keys():
    with pytest.raises(EnvMappingError) as excinfo:
        build_env([Parameter("/flora/prod/stripe-key", "x"), Parameter("/flora/prod/ok", "y")], mapping())
    assert len(excinfo.value.problems) == 1
    assert "/flora/prod/stripe-key gives the key 'STRIPE-KEY'" in excinfo.value.problems[0]
    assert build_env([Parameter("/flora/prod/stripe-key", "x")], mapping(rename={"stripe-key": "STRIPE_KEY"})) == {
        "STRIPE_KEY": "x"
    }


def test_secret_values_are_only_secure_strings_in_every_form_compose_gives_them():
    assert secret_values(FLORA) == [
        "p@ss/w:rd%", "p%40ss%2Fw%3Ard%25", "P@SS/W:RD%",
        "app pass", "app%20pass", "APP PASS",
        "sk_test", "SK_TEST",
    ]  # fmt: skip
