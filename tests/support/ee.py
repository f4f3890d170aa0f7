"""The execution environment of execution-environment.yml, built here with ansible-builder and podman, and
playbooks run in it as AWX runs a job: ansible-runner transmit, worker (in the image) and process.

No registry and no Galaxy server can be reached here, so the build takes two things from this machine instead of
from the network, and nothing else differs from execution-environment.yml: the base image is the Debian 12 test
host image (molecule/shared/build-image.sh), and the declared collections are the ones the `ansible` package
bundles, repacked as artifacts (tests/support/collections.py), at the versions meta/ee-collections.yml pins. The
machine's own CA bundle, which the test host image carries, is handed to pip and npm, as this network inspects TLS.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import collections, stack

REPO = stack.REPO
BIN = Path(sys.executable).parent
IMAGE = "localhost/flora-deploy-ee:test"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def build(work: Path) -> str:
    """Build the image from a copy of the definition in ``work``; returns its name."""
    stack.build_test_host_image()
    context = work / "ee"
    shutil.rmtree(context, ignore_errors=True)
    (context / "build" / "ee").mkdir(parents=True)
    built = (
        subprocess.run(
            [
                str(BIN / "ansible-galaxy"),
                "collection",
                "build",
                "--force",
                "--output-path",
                str(context / "build" / "ee"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .rsplit(" ", 1)[-1]
    )
    Path(built).rename(context / "build" / "ee" / "flora-deploy.tar.gz")
    definition = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    definition["images"]["base_image"]["name"] = stack.IMAGE
    pinned = yaml.safe_load((REPO / "meta" / "ee-collections.yml").read_text())["collections"]
    galaxy = []
    for entry in pinned:
        if entry.get("type") == "file":
            galaxy.append(entry)
            continue
        assert collections.version(entry["name"]) == str(entry["version"]), entry
        artifact = collections.repack(entry["name"], context / "build" / "ee")
        galaxy.append({"name": f"collections/{artifact.name}", "type": "file"})
    (context / "meta").mkdir()
    (context / "meta" / "ee-collections.yml").write_text(yaml.safe_dump({"collections": galaxy}))
    shutil.copy(REPO / "meta" / "ee-system.txt", context / "meta" / "ee-system.txt")
    definition["additional_build_files"] = [{"src": "build/ee", "dest": "collections"}]
    steps = definition["additional_build_steps"]
    steps["prepend_base"] = [
        f"ENV PIP_CERT={CA_BUNDLE} NPM_CONFIG_CAFILE={CA_BUNDLE} NODE_EXTRA_CA_CERTS={CA_BUNDLE}",
        *steps["prepend_base"],
    ]
    (context / "execution-environment.yml").write_text(yaml.safe_dump(definition, sort_keys=False))
    subprocess.run(
        [
            str(BIN / "ansible-builder"),
            "build",
            "-f",
            "execution-environment.yml",
            "-t",
            IMAGE,
            "--container-runtime",
            "podman",
            "-v",
            "1",
        ],
        cwd=context,
        env=stack.podman_env(),
        check=True,
    )
    return IMAGE


class JobRun:
    """An ansible-runner job: its exit code, and each task's result on each host, from its job events."""

    def __init__(self, artifacts: Path, rc: int):
        self.rc = rc
        self.stdout = (artifacts / "stdout").read_text() if (artifacts / "stdout").exists() else ""
        events = [yaml.safe_load(path.read_text()) for path in sorted((artifacts / "job_events").glob("*.json"))]
        self.events = sorted(events, key=lambda event: event["counter"])
        self.results = [
            (
                event["event_data"]["task"],
                event["event_data"]["host"],
                event["event"],
                event["event_data"].get("res", {}),
            )
            for event in self.events
            if event["event"] in ("runner_on_ok", "runner_on_failed", "runner_on_skipped")
        ]
        stats = [event["event_data"] for event in self.events if event["event"] == "playbook_on_stats"]
        self.stats = stats[-1] if stats else {}

    def changed(self, host: str) -> int:
        return self.stats.get("changed", {}).get(host, 0)

    def result(self, task: str, host: str) -> dict:
        found = [res for name, on, _event, res in self.results if name == task and on == host]
        assert len(found) == 1, (task, host, len(found))
        return found[0]

    def warnings(self, host: str) -> list[tuple[str, str]]:
        """The warnings the modules returned on ``host``, as (task, warning)."""
        return [
            (name, warning)
            for name, on, _event, res in self.results
            if on == host
            for warning in res.get("warnings", [])
        ]

    def __repr__(self) -> str:
        return f"rc={self.rc}\n{self.stdout[-6000:]}"


def run(
    services: dict,
    playbook: str,
    work: Path,
    ident: str,
    extra_vars: dict | None = None,
    project: dict[str, Path] | None = None,
) -> JobRun:
    """``playbook`` (a collection playbook, flora.deploy.<name>) in the image, as AWX runs a job through receptor:
    ``ansible-runner transmit`` packs the job, ``ansible-runner worker`` runs it inside the image (as the image's
    user, with the image's collections only), ``ansible-runner process`` writes its events back here. The job has
    the stack's inventory and an SSH key, handed over as AWX hands a machine credential (env/ssh_key), and the
    deployer's AWS keys in env/envvars, as AWX's AWS credential hands them.
    ``project`` copies directories into the job's project directory, /runner/project in the image (AWX's
    worker runs in /runner too)."""
    data = work / ident
    (data / "project").mkdir(parents=True)
    for name, source in (project or {}).items():
        shutil.copytree(source, data / "project" / name, symlinks=True)
    (data / "env").mkdir()
    (data / "project" / "run.yml").write_text(yaml.safe_dump([{"ansible.builtin.import_playbook": playbook}]))
    shutil.copytree(services["inventory"], data / "inventory")
    shutil.copy(services["ssh_key"], data / "env" / "ssh_key")
    hosts = yaml.safe_load((data / "inventory" / "hosts.yml").read_text())
    for host in hosts["flora_backend"]["hosts"].values():
        host.pop("ansible_ssh_private_key_file")
    (data / "inventory" / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (data / "env" / "extravars").write_text(yaml.safe_dump(extra_vars or {}))
    # The deployer's keys, as AWX's Amazon Web Services credential injects them.
    deployer = services["identities"].deployer
    envvars = {"ANSIBLE_NOCOLOR": "1", "AWS_ACCESS_KEY_ID": deployer.access_key_id}
    envvars["AWS_SECRET_ACCESS_KEY"] = deployer.secret_access_key
    (data / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    runner = str(BIN / "ansible-runner")
    transmit = subprocess.Popen(
        [runner, "transmit", str(data), "--playbook", "run.yml", "--ident", ident], stdout=subprocess.PIPE
    )
    # The stack's services (moto, PostgreSQL, the git daemon, the hosts' SSH) listen on loopback.
    worker = subprocess.Popen(
        [
            "podman",
            "run",
            "--rm",
            "-i",
            "--network=host",
            IMAGE,
            "ansible-runner",
            "worker",
            "--private-data-dir=/runner",
        ],
        stdin=transmit.stdout,
        stdout=subprocess.PIPE,
        env=stack.podman_env(),
    )
    transmit.stdout.close()
    processed = subprocess.run(
        [runner, "process", str(data), "--ident", ident],
        stdin=worker.stdout,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    worker.stdout.close()
    transmit.wait(timeout=60)
    worker.wait(timeout=60)
    # The job's own exit code, as AWX reports it; none when the job never ran.
    status = data / "artifacts" / ident / "rc"
    assert status.exists(), processed.stdout[-3000:] + processed.stderr[-3000:]
    return JobRun(data / "artifacts" / ident, int(status.read_text()))
