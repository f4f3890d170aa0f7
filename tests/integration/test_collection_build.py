"""ansible-galaxy collection build gives a tarball that installs and documents its modules and roles."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def test_built_collection_installs_and_documents_itself(tmp_path):
    build = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    tarball = tmp_path / "flora-deploy-0.1.0.tar.gz"
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/modules/ssm_env.py" in names
    assert "roles/backend_redeploy/tasks/main.yml" in names
    assert "playbooks/redeploy_backend.yml" in names
    assert not [name for name in names if "node_modules" in name or name.startswith((".venv", ".cache"))]

    target = tmp_path / "collections"
    # Away from the checkout's ansible.cfg, as a user of the tarball would be.
    env = {"ANSIBLE_COLLECTIONS_PATH": str(target), "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    install = subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "-p",
            str(target),
            str(tarball),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    for kind, name in (("module", "flora.deploy.s3_publish"), ("role", "flora.deploy.ec2_bootstrap")):
        doc = subprocess.run(
            [str(BIN / "ansible-doc"), "-t", kind, name],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert doc.returncode == 0, doc.stderr
        assert "flora.deploy" in doc.stdout or "ec2_bootstrap" in doc.stdout


def declared_dependencies() -> dict[str, str]:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())["dependencies"]


def satisfies(version: str, ranges: str) -> bool:
    """Whether a version meets a galaxy.yml range such as '>=10.0.0,<11.0.0'."""

    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(piece) for piece in text.split("."))

    checks = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b}
    for condition in ranges.split(","):
        operator = next(op for op in (">=", "<=", ">", "<") if condition.startswith(op))
        if not checks[operator](parts(version), parts(condition[len(operator) :])):
            return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The built collection installed into an empty path beside exactly the collections galaxy.yml declares,
    as ansible-galaxy would install them, and an environment that sees nothing else (not the ansible package's
    collections on sys.path, not the checkout)."""
    work = tmp_path_factory.mktemp("installed")
    build = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(work)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    tarball = build.stdout.strip().rsplit(" ", 1)[-1]
    target = work / "collections"
    env = {
        "ANSIBLE_COLLECTIONS_PATH": str(target),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(work),
    }
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p", str(target), tarball],
        cwd=work,
        env=env,
        capture_output=True,
        check=True,
    )
    import ansible_collections

    bundled = Path(next(path for path in ansible_collections.__path__ if "site-packages" in path))
    for name, ranges in declared_dependencies().items():
        namespace, collection = name.split(".")
        source = bundled / namespace / collection
        version = json.loads((source / "MANIFEST.json").read_text())["collection_info"]["version"]
        assert satisfies(version, ranges), f"{name} {version} is outside galaxy.yml's {ranges}"
        shutil.copytree(source, target / "ansible_collections" / namespace / collection)
    return {"work": work, "env": env, "collections": target / "ansible_collections"}


def used_modules(root: Path) -> set[str]:
    """Every module or action a role or playbook of the collection calls by its fully qualified name."""
    called = re.compile(r"^\s+(?:- )?([a-z_]+\.[a-z_]+\.[a-z_0-9]+):", re.MULTILINE)
    files = [*root.glob("roles/*/tasks/*.yml"), *root.glob("roles/*/handlers/*.yml"), *root.glob("playbooks/*.yml")]
    return {name for path in files for name in called.findall(path.read_text())} - {"ansible.builtin.meta"}


def test_every_playbook_parses_by_its_fqcn_with_the_declared_collections_only(installed):
    playbooks = sorted(
        path.stem for path in (installed["collections"] / "flora" / "deploy" / "playbooks").glob("*.yml")
    )
    assert len(playbooks) >= 6
    for name in playbooks:
        checked = subprocess.run(
            [str(BIN / "ansible-playbook"), "--syntax-check", f"flora.deploy.{name}"],
            cwd=installed["work"],
            env=installed["env"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, f"flora.deploy.{name}: {checked.stdout}{checked.stderr}"


def test_every_module_the_content_calls_resolves_with_the_declared_collections_only(installed):
    modules = used_modules(installed["collections"] / "flora" / "deploy")
    assert {"ansible.posix.acl", "awx.awx.job_template", "amazon.aws.s3_object", "flora.deploy.npm_global"} <= modules
    unresolved = []
    for name in sorted(modules):
        doc = subprocess.run(
            [str(BIN / "ansible-doc"), "-t", "module", "--json", name],
            cwd=installed["work"],
            env=installed["env"],
            capture_output=True,
            text=True,
            check=False,
        )
        if doc.returncode != 0 or not json.loads(doc.stdout or "{}"):
            unresolved.append(name)
    assert unresolved == []


def test_a_collection_galaxy_yml_does_not_declare_would_not_resolve(installed, tmp_path):
    """The check above can fail: without one declared collection, its modules are unknown."""
    partial = tmp_path / "ansible_collections"
    shutil.copytree(installed["collections"], partial, ignore=shutil.ignore_patterns("posix"))
    env = dict(installed["env"], ANSIBLE_COLLECTIONS_PATH=str(tmp_path))
    doc = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "module", "--json", "ansible.posix.acl"],
        cwd=installed["work"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert doc.returncode != 0 or not json.loads(doc.stdout or "{}")
