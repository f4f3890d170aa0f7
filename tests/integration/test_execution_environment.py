"""execution-environment.yml and collections/requirements.yml: ansible-builder creates the build context, and
the pins agree with the ones the project is tested with."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.conftest import REPO
from tests.integration.test_collection_build import satisfies

BIN = Path(sys.executable).parent


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line.strip())
        if match:
            found[match.group(1).split("[")[0].lower()] = match.group(2)
    return found


def test_ansible_builder_creates_the_build_context(tmp_path):
    context = tmp_path / "context"
    proc = subprocess.run(
        [str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(context)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text()
    tested = pins(REPO / "requirements.txt")
    assert (
        f'ANSIBLE_INSTALL_REFS="ansible-core=={tested["ansible-core"]} ansible-runner=={tested["ansible-runner"]}"'
        in (containerfile)
    )
    assert "ansible-galaxy collection install" in containerfile
    assert "pnpm@" in containerfile
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    assert galaxy == yaml.safe_load((REPO / "meta" / "ee-collections.yml").read_text())["collections"]
    # This revision's collection as `make ee` builds it, then the declared collections at the tested pins.
    assert galaxy[0] == {"name": "collections/flora-deploy.tar.gz", "type": "file"}
    pinned = {
        c["name"]: c.get("version")
        for c in yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())["collections"]
    }
    pinned.pop(".")
    assert {c["name"]: c["version"] for c in galaxy[1:]} == pinned
    python = pins(context / "_build" / "requirements.txt")
    assert python == {name: tested[name] for name in ("boto3", "botocore", "cryptography", "squawk-cli", "pglast")}
    bindep = (context / "_build" / "bindep.txt").read_text().splitlines()
    assert {"git [platform:dpkg]", "openssh-client [platform:dpkg]", "chromium [platform:dpkg]"} <= set(bindep)


def test_collection_requirements_are_this_checkout_and_the_declared_collections_pinned():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    wanted = {
        c["name"]: c for c in yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())["collections"]
    }
    # flora.deploy from the checkout the requirements are installed in, not from a branch that moves.
    assert wanted.pop(".") == {"name": ".", "type": "dir"}
    assert set(wanted) == set(galaxy["dependencies"])
    for name, ranges in galaxy["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", str(wanted[name]["version"])), wanted[name]
        assert satisfies(str(wanted[name]["version"]), ranges), (name, wanted[name]["version"], ranges)


def test_introspection_takes_the_collection_runtime_needs_not_the_development_tools(tmp_path):
    context = tmp_path / "context"
    subprocess.run(
        [str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(context)],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=300,
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(context / "_build" / "scripts" / "introspect.py"),
            "introspect",
            str(REPO / ".collections"),
            "--write-pip",
            str(tmp_path / "pip.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = yaml.safe_load(proc.stdout)
    python = [line.split("#")[0].strip() for line in found["python"]]
    assert "boto3>=1.34.0" in python
    assert not [line for line in python if re.match(r"(molecule|ansible-lint|pytest|moto)", line)]
    assert any(line.startswith("git [platform:dpkg]") for line in found["system"])
