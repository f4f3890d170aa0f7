"""The local stand-in for production: what tests, the demo and the benchmarks deploy to.

A moto server with the Flora parameters, a private PostgreSQL, the fixture app over git://, the CloudWatch
agent stand-in over HTTP, and an inventory whose group_vars point a systemd test host at all of them.

The moto server authorizes every request against the caller's IAM policies, as AWS does, with the policies the
collection ships (roles/iam_policies): ansible-playbook runs as the deployer (its keys in the environment, as
AWX injects them), the test hosts as the backend's instance role (its credentials in root's and, through
/etc/skel, the app user's AWS credentials file, standing in for the instance profile), and the tests' own calls
as an administrator.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

from tests.support import hostside, identities, localaws

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "molecule" / "shared" / "containers.conf"
STAND_IN = REPO / "tests" / "fixtures" / "cloudwatch-agent-stand-in"
BUILD_IMAGE = REPO / "molecule" / "shared" / "build-image.sh"
# The same tag build-image.sh computes: it follows the recipe's content.
IMAGE = f"localhost/flora-testhost:bookworm-{hashlib.sha256(BUILD_IMAGE.read_bytes()).hexdigest()[:12]}"
SSH_PORT = 2222
# The bucket the redeploy backs the database up to before a migration.
BACKUP_BUCKET = "flora-db-backups-test"
# Where a test host finds its instance role's credentials: root's, and the app user's once useradd copies /etc/skel.
INSTANCE_CREDENTIALS_PATHS = ("/root/.aws/credentials", "/etc/skel/.aws/credentials")


def podman_env() -> dict:
    return dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF), FLORA_TESTHOST_IMAGE=IMAGE)


def build_test_host_image() -> None:
    subprocess.run([str(BUILD_IMAGE)], check=True, env=podman_env())


def write_inventory(directory: Path, host: str, variables: dict, ssh_key: Path) -> None:
    """group_vars shared by molecule (linked in molecule.yml) and direct playbook runs, and a hosts file.

    Direct runs reach the host the way they reach EC2: SSH (on loopback port 2222) with pipelining.
    """
    (directory / "group_vars").mkdir(parents=True)
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables))
    ssh = {
        "ansible_host": "127.0.0.1",
        "ansible_port": SSH_PORT,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(ssh_key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_ssh_pipelining": True,
    }
    (directory / "hosts.yml").write_text(yaml.safe_dump({"flora_backend": {"hosts": {host: ssh}}}))


def authorize_ssh(stack: dict) -> None:
    """Let the stack's key log in as root on its running test host."""
    host = stack["host"]
    host_exec(host, "install", "-d", "-m", "0700", "/root/.ssh")
    subprocess.run(
        ["podman", "cp", str(stack["ssh_key"]) + ".pub", f"{host}:/root/.ssh/authorized_keys"],
        env=podman_env(),
        check=True,
        capture_output=True,
    )
    host_exec(host, "chmod", "0600", "/root/.ssh/authorized_keys")
    hostside.wait_for_port(SSH_PORT, timeout=60)


# A t2.micro, the real backend's instance type: 1 GiB and no swap.
T2_MICRO = ("--memory=1g", "--memory-swap=1g")


def instance_profile(stack: dict) -> list[str]:
    """podman run options giving a test host the backend's instance role (molecule.yml's volumes do the same)."""
    credentials = stack["env"]["FLORA_TEST_INSTANCE_CREDENTIALS"]
    return [option for path in INSTANCE_CREDENTIALS_PATHS for option in ("-v", f"{credentials}:{path}:ro")]


def start_test_host(stack: dict, limits: tuple[str, ...] = T2_MICRO) -> None:
    """A fresh systemd test host for the stack (the demo and the benchmarks; most tests use molecule)."""
    host = stack["host"]
    subprocess.run(["podman", "rm", "-f", host], env=podman_env(), capture_output=True, check=False)
    subprocess.run(
        ["podman", "run", "-d", "--name", host, "--systemd=always", "--network", "host", *limits]
        + instance_profile(stack)
        + ["--add-host", f"{host}:127.0.0.1", IMAGE, "/sbin/init"],
        env=podman_env(),
        capture_output=True,
        check=True,
    )
    authorize_ssh(stack)


def remove_test_host(stack: dict) -> None:
    subprocess.run(["podman", "rm", "-f", stack["host"]], env=podman_env(), capture_output=True, check=False)


# What the stack's identities' policies are for, besides the environment (prod): tests.support.stack.allow adds
# the resources a test makes.
BASE_SETTINGS = {"backup_bucket": BACKUP_BUCKET}


def allow(stack: dict, **settings) -> None:
    """Give the stack's identities the policies the collection ships for these resources too (iam_policies
    settings without the prefix: frontend_bucket=..., distribution_id=..., target_group_arn=...)."""
    stack["settings"].update(settings)
    identities.production_identities(stack["endpoint"], **stack["settings"])


@contextmanager
def allowing(stack: dict, **settings) -> Iterator[None]:
    """allow, until the block ends: then the policies are the ones before it."""
    before = dict(stack["settings"])
    allow(stack, **settings)
    try:
        yield
    finally:
        stack["settings"] = before
        allow(stack)


@contextmanager
def local_stack(work: Path, host: str, grow: Callable[[Path], None] | None = None) -> Iterator[dict]:
    """Start every service the test host reaches; yields addresses, the inventory and the environment.

    ``grow`` changes the fixture app before it is committed (see hostside.fixture_repository).
    """
    with ExitStack() as stack:
        packages = hostside.shared_tmpdir("flora-packages-")
        stack.callback(subprocess.run, ["rm", "-rf", str(packages)], check=False)
        deb = packages / "amazon-cloudwatch-agent.deb"
        subprocess.run([str(STAND_IN / "build.sh"), str(deb)], check=True, capture_output=True)
        git_base = hostside.shared_tmpdir("flora-git-")
        stack.callback(subprocess.run, ["rm", "-rf", str(git_base)], check=False)
        commits = hostside.fixture_repository(git_base, grow)
        endpoint = stack.enter_context(localaws.moto_server(work / "moto.log", authorizing=True))
        localaws.seed_flora_parameters(endpoint)
        localaws.boto3_client("s3", endpoint).create_bucket(
            Bucket=BACKUP_BUCKET, CreateBucketConfiguration={"LocationConstraint": localaws.REGION}
        )
        roles = stack.enter_context(identities.in_production(endpoint, **BASE_SETTINGS))
        instance_credentials = work / "instance-credentials"
        instance_credentials.write_text(roles.instance.credentials_file())
        instance_credentials.chmod(0o600)
        pg_port = stack.enter_context(
            hostside.postgres(
                "flora_db",
                localaws.FLORA_STRING_PARAMETERS["db_username"],
                localaws.FLORA_SECURE_PARAMETERS["db_password"],
            )
        )
        git_url = stack.enter_context(hostside.git_daemon(git_base))
        files_url = stack.enter_context(hostside.file_server(packages))
        inventory = work / "inventory"
        ssh_key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)
        write_inventory(
            inventory,
            host,
            {
                "flora_aws_endpoint_url": endpoint,
                "backend_release_repo_url": f"{git_url}/flora.git",
                "app_env_db_host": "127.0.0.1",
                "app_env_db_port": pg_port,
                "app_env_site_url": "https://flora.example",
                "backend_redeploy_backup_bucket": BACKUP_BUCKET,
                # The test database starts empty, as a first bootstrap's does.
                "ec2_bootstrap_seed": True,
                "nodejs_install_method": "binary",
                # The test network inspects TLS; the image carries the host's CA bundle.
                "nodejs_npm_cafile": "/etc/ssl/certs/ca-certificates.crt",
                "cloudwatch_agent_package_url": f"{files_url}/amazon-cloudwatch-agent.deb",
                "cloudwatch_agent_package_checksum": "sha256:" + hashlib.sha256(deb.read_bytes()).hexdigest(),
            },
            ssh_key,
        )
        env = podman_env()
        env.update(localaws.aws_environment(endpoint))
        env.update(roles.deployer.environment())
        env.update(
            {
                "FLORA_TEST_INSTANCE_CREDENTIALS": str(instance_credentials),
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
                "FLORA_COLLECTIONS_PATH": str(REPO / ".collections"),
                "FLORA_TEST_INVENTORY": str(inventory),
                "FLORA_TEST_PG_PORT": str(pg_port),
                "ANSIBLE_NOCOLOR": "1",
                "PY_COLORS": "0",
            }
        )
        yield {
            "env": env,
            "endpoint": endpoint,
            "commits": commits,
            # The fixture app's bare repository (the hosts' origin): tests may push new commits to it.
            "origin": git_base / "flora.git",
            "inventory": inventory,
            "pg_port": pg_port,
            "host": host,
            "ssh_key": ssh_key,
            "identities": roles,
            "settings": dict(BASE_SETTINGS),
        }


def playbook_command(stack: dict, name: str, *extra: str) -> list[str]:
    """ansible-playbook playbooks/<name> against the test host, as a user runs it."""
    inventory = str(stack["inventory"] / "hosts.yml")
    return [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory,
        str(REPO / "playbooks" / name),
        *extra,
    ]


def playbook(stack: dict, name: str, *extra: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        playbook_command(stack, name, *extra),
        cwd=REPO,
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def host_exec(host: str, *cmd: str) -> str:
    return subprocess.run(
        ["podman", "exec", host, *cmd], env=podman_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


# What changes on a host whether or not anything is deployed: kernel and runtime state, logs, caches, the
# temporary files of the ansible run itself, PM2's logs and sockets.
RUNTIME_PATHS = (
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    "/var/tmp",
    "/var/log",
    "/var/cache",
    "/var/lib/apt/lists",
    "/var/lib/systemd",
    "/root/.ansible",
    "/home/ubuntu/.ansible",
    "/home/ubuntu/.pm2/logs",
    "/home/ubuntu/.pm2/pm2.log",
    "/home/ubuntu/.pm2/rpc.sock",
    "/home/ubuntu/.pm2/pub.sock",
)


def host_state(host: str) -> dict[str, str]:
    """What a deploy could change on the test host: every file outside RUNTIME_PATHS with its type, mode, owner,
    size, modification time and link target; the units enabled and running; the app user's processes and pids."""
    prune = " -o ".join(f"-path {path}" for path in RUNTIME_PATHS)
    listing = host_exec(
        host, "sh", "-c", f"find / -xdev \\( {prune} \\) -prune -o -printf '%p\\t%y %m %U:%G %s %T@ %l\\n'"
    )
    state = {}
    for line in listing.splitlines():
        path, attributes = line.split("\t", 1)
        kind, mode, owner, size, mtime, target = attributes.split(" ", 5)
        # A directory's own time changes when an entry comes and goes (ansible's temporary files); its entries
        # are compared one by one.
        state[path] = " ".join((kind, mode, owner, size, "" if kind == "d" else mtime, target))
    state["units"] = host_exec(
        host,
        "sh",
        "-c",
        "systemctl list-units --no-legend --plain --state=active | sort; systemctl list-unit-files"
        " --no-legend --state=enabled | sort",
    )
    # Read from ps, not from PM2: asking PM2 would start its daemon on a host without one.
    state["processes"] = host_exec(host, "sh", "-c", "ps -u ubuntu -o pid=,args= | sort || true")
    return state


def state_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple]:
    """The entries that differ between two host_state() snapshots: {path: (before, after)}."""
    return {
        key: (before.get(key), after.get(key))
        for key in before.keys() | after.keys()
        if before.get(key) != after.get(key)
    }


class PlaybookRun:
    """An ansible-playbook run reported by the ansible.posix.json callback: its exit code and each task's result."""

    def __init__(self, proc: subprocess.CompletedProcess, host: str):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        self.host = host
        try:
            self.report = json.loads(proc.stdout)
        except ValueError:
            self.report = {"plays": [], "stats": {}, "unparsed": proc.stdout}
        self.tasks = [
            (task["task"]["name"], task["hosts"].get(host))
            for play in self.report["plays"]
            for task in play["tasks"]
            if host in task["hosts"]
        ]

    def results(self, name: str) -> list[dict]:
        """The results of the tasks called ``name`` (with or without their role's prefix), in the order they ran."""
        return [result for task, result in self.tasks if task == name or task.endswith(" : " + name)]

    def result(self, name: str) -> dict:
        """The result of the one task called ``name``; fails the test when it did not run exactly once."""
        found = self.results(name)
        assert len(found) == 1, f"{name!r} reported {len(found)} times: {self.names()}"
        return found[0]

    def ran(self, name: str) -> bool:
        """Whether a task called ``name`` ran (reported, and not skipped)."""
        return any(not result.get("skipped") for result in self.results(name))

    def names(self) -> list[str]:
        return [task for task, _result in self.tasks]

    def warnings(self) -> list[tuple[str, str]]:
        """The warnings the modules returned on the host, as (task, warning)."""
        return [(task, warning) for task, result in self.tasks for warning in result.get("warnings", [])]

    @property
    def stats(self) -> dict:
        return self.report["stats"].get(self.host, {})

    @property
    def changed(self) -> int:
        return self.stats.get("changed", 0)

    def failure(self) -> str:
        """The message of the last task that failed; '' when none did."""
        failed = [result.get("msg", "") for _task, result in self.tasks if result.get("failed")]
        return failed[-1] if failed else ""

    def __repr__(self) -> str:
        lines = [f"rc={self.rc}"]
        for task, result in self.tasks:
            state = (
                "failed"
                if result.get("failed")
                else "skipped"
                if result.get("skipped")
                else ("changed" if result.get("changed") else "ok")
            )
            lines.append(f"{state:8} {task}" + (f": {result.get('msg')}" if result.get("msg") else ""))
        return "\n".join(lines + [self.stderr[-3000:], str(self.report.get("unparsed", ""))[-3000:]])


def playbook_run(stack: dict, name: str, *extra: str, timeout: int = 900) -> PlaybookRun:
    """ansible-playbook playbooks/<name> against the test host, reported task by task (ansible.posix.json)."""
    env = dict(stack["env"], ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(
        playbook_command(stack, name, *extra),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookRun(proc, stack["host"])
