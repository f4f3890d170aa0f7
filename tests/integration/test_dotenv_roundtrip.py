"""Env files written by flora.deploy read back unchanged through the real parsers.

npm ``dotenv`` 16 (what the backend loads) runs in Node from tests/fixtures/dotenv-reader;
python-dotenv runs in-process. Both must return exactly what was written.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import dotenv
import pytest

from ansible_collections.flora.deploy.plugins.module_utils.envfile import quote_value, render_env_file
from tests.unit.plugins.module_utils.test_envfile import TRICKY_VALUES

READER = Path(__file__).resolve().parents[1] / "fixtures" / "dotenv-reader"
ALPHABET = "aZ9 _-=#$'\"`\\\n\r\t{}:/@%!*é🌸"


def read_with_npm_dotenv(path: Path) -> dict:
    node = shutil.which("node")
    assert node, "node is required: make test installs it"
    assert (READER / "node_modules" / "dotenv").is_dir(), "run 'npm ci' in tests/fixtures/dotenv-reader"
    out = subprocess.run([node, str(READER / "read-env.js"), str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def random_values(count: int, seed: int) -> dict:
    rng = random.Random(seed)
    values = {}
    while len(values) < count:
        value = "".join(rng.choice(ALPHABET) for _position in range(rng.randint(0, 12)))
        try:
            quote_value(value)
        except ValueError:
            continue
        values[f"RANDOM_{len(values)}"] = value
    return values


def test_npm_dotenv_package_is_version_16():
    version = json.loads((READER / "node_modules" / "dotenv" / "package.json").read_text())["version"]
    assert version.startswith("16.")


@pytest.mark.parametrize("values", [TRICKY_VALUES, random_values(400, seed=7)], ids=["tricky", "random"])
def test_both_parsers_read_back_every_value(tmp_path, values):
    path = tmp_path / "backend.env"
    path.write_text(render_env_file(values), encoding="utf-8")
    assert read_with_npm_dotenv(path) == values
    assert dict(dotenv.dotenv_values(path)) == values
