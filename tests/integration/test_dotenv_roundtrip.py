"""Env files written by flora.deploy read back exactly through the real readers, for values of any shape.

npm dotenv 16 (``parse``, and ``config`` into ``process.env``) and Vite's ``loadEnv`` run in Node, in one process
for the whole test (tests/fixtures/dotenv-reader/read-env.js --serve); python-dotenv runs in-process, on a real
file. Hypothesis generates the values: quotes of every kind, ``$``, ``${}``, backticks, backslashes, ``#``, ``=``,
line breaks, tabs, outer spaces, unicode, long values, NUL characters and text that is not UTF-8. Each is either
read back byte for byte, or refused with a message naming its key and the reader; a refused value reads back
wrongly in every form the reader has.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import dotenv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.flora.deploy.plugins.module_utils.envfile import EnvFileError, render_env_file
from tests.unit.plugins.module_utils.test_envfile import TRICKY_VALUES

READER = Path(__file__).resolve().parents[1] / "fixtures" / "dotenv-reader"
EXAMPLES = int(os.environ.get("FLORA_DOTENV_EXAMPLES", "300"))

# Characters each reader treats specially, drawn often; any other character, now and then.
SPECIAL = list("'\"`$\\{}#=:-\n\r\t ") + ["${", "${HOME}", "${X:-y}", "$HOME", "\\n", "\\r", "\\$", "\u2028", "\ufeff"]
PIECES = st.one_of(
    st.sampled_from(SPECIAL),
    st.characters(codec="utf-8"),
    st.characters(categories=["Cs"]),
    st.text(alphabet="abcXYZ019_./@%", min_size=1, max_size=6),
)
VALUES = st.one_of(
    st.lists(PIECES, max_size=12).map("".join),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1000, max_size=3000),
)
ENVS = st.lists(VALUES, min_size=1, max_size=4).map(lambda values: {f"VITE_KEY_{i}": v for i, v in enumerate(values)})


class NodeReaders:
    """npm dotenv 16 and Vite, in one Node process, with an environment of its own."""

    def __init__(self):
        node = shutil.which("node")
        assert node, "node is required: make test installs it"
        assert (READER / "node_modules" / "vite").is_dir(), "run 'npm ci' in tests/fixtures/dotenv-reader"
        self.process = subprocess.Popen(
            [node, str(READER / "read-env.js"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={"PATH": os.environ["PATH"]},
        )

    def read(self, reader: str, text: str) -> dict:
        self.process.stdin.write(json.dumps({"reader": reader, "text": text}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def node():
    readers = NodeReaders()
    yield readers
    readers.close()


def read_with_npm_dotenv(path: Path) -> dict:
    """An env file as the backend's dotenv 16 parses it (one Node process per file)."""
    node = shutil.which("node")
    assert node, "node is required: make test installs it"
    out = subprocess.run([node, str(READER / "read-env.js"), str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def read_with_python_dotenv(text: str, tmp_path_factory) -> dict:
    """As load_dotenv() reads a file: from disk (universal newlines), with variable expansion."""
    path = tmp_path_factory.mktemp("python-dotenv") / ".env"
    path.write_text(text, encoding="utf-8", newline="")
    return dict(dotenv.dotenv_values(path))


def forms(value: str) -> list[str]:
    """Every way a value can be written for npm dotenv: the three quotes (double quotes with and without its
    escapes for line breaks) and none."""
    escaped = value.replace("\n", "\\n").replace("\r", "\\r")
    return [f"'{value}'", f'"{value}"', f'"{escaped}"', f"`{value}`", value]


def python_forms(value: str) -> list[str]:
    """Every way a value can be written for python-dotenv: its two quotes, with their escapes."""
    escaped = value.replace("\\", "\\\\")
    single = escaped.replace("'", "\\'")
    double = escaped.replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return [f"'{single}'", f'"{double}"']


def never_in_an_environment(value: str) -> bool:
    return "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value)


def check(values: dict, reader: str, read) -> None:
    try:
        text = render_env_file(values, reader)
    except EnvFileError as refused:
        for problem in refused.problems:
            assert f"cannot be written for {reader}:" in problem
        refused_keys = {key for key in values if any(f"the value of {key} " in p for p in refused.problems)}
        assert refused_keys, refused.problems
        for key in refused_keys - {key for key in refused_keys if never_in_an_environment(values[key])}:
            # A refusal is no excuse: no form the reader has reads the value back.
            value = values[key]
            written = value.replace("$", "\\$") if reader == "vite" else value
            for form in python_forms(value) if reader == "python-dotenv" else forms(written):
                assert read(f"{key}={form}\n").get(key) != value, (reader, key, form)
        return
    assert read(text) == values


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=ENVS)
def test_npm_dotenv_parse_reads_back_every_value_it_is_given(node, values):
    check(values, "dotenv", lambda text: node.read("parse", text))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=ENVS)
def test_npm_dotenv_config_puts_every_value_into_process_env(node, values):
    check(values, "dotenv", lambda text: node.read("config", text))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=ENVS)
def test_python_dotenv_with_expansion_reads_back_every_value_it_is_given(tmp_path_factory, values):
    check(values, "python-dotenv", lambda text: read_with_python_dotenv(text, tmp_path_factory))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=ENVS)
def test_vite_load_env_reads_back_every_value_it_is_given(node, values):
    check(values, "vite", lambda text: node.read("vite", text))


def test_npm_dotenv_package_is_version_16():
    version = json.loads((READER / "node_modules" / "dotenv" / "package.json").read_text())["version"]
    assert version.startswith("16.")


def test_one_file_of_tricky_values_reaches_process_env_exactly(node):
    text = render_env_file(TRICKY_VALUES)
    assert node.read("config", text) == TRICKY_VALUES
    assert node.read("parse", text) == TRICKY_VALUES


@pytest.mark.parametrize(
    ("reader", "value", "why"),
    [
        ("dotenv", "a\x00b", "it contains a NUL character, which no environment variable can hold"),
        ("python-dotenv", "x\udcffy", "it is not valid UTF-8 text"),
        ("python-dotenv", "p${HOME}w", "it contains '${...}', which python-dotenv expands as a variable"),
        ("dotenv", "'`\"#\nsecond line", "npm dotenv 16 reads it back changed in every form it has"),
        ("vite", "'$`\" #\n", "npm dotenv 16 reads it back changed in every form it has"),
    ],
)
def test_a_value_the_reader_cannot_carry_is_refused_naming_its_key(reader, value, why):
    with pytest.raises(EnvFileError) as refused:
        render_env_file({"GOOD": "fine", "STRIPE_SECRET_KEY": value}, reader)
    (problem,) = refused.value.problems
    assert problem.startswith(f"the value of STRIPE_SECRET_KEY cannot be written for {reader}: {why}")
