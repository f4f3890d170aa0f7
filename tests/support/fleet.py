"""Three backend hosts behind a local load balancer that follows an ELBv2 target group on the moto server.

The hosts are copies of the bootstrapped test host (a podman commit), each started with its app on its own port
(host network), reached with the podman connection. HAProxy on loopback balances over them and a watcher keeps
each HAProxy server in step with its target's state, as an ALB follows its target group: a deregistered target
gets no new requests, a healthy one gets them again.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

from tests.support import localaws, stack
from tests.support.hostside import stop_process

SNAPSHOT = "localhost/flora-fleet:snapshot"
ENV_FILE = "/home/ubuntu/Flora/shared/backend.env"
BASE_PORT = 3100  # the balancer; hosts on 3101, 3102, 3103


def podman(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=stack.podman_env(), capture_output=True, check=True, **kwargs)


def ledger(name: str) -> dict:
    return json.loads(stack.host_exec(name, "cat", "/home/ubuntu/Flora/releases.json"))


def env_file_tar(original: str, port: int, uid: int, gid: int) -> bytes:
    """backend.env with this host's PORT, owned by the app user, mode 0600, as a tar stream for podman cp."""
    content, count = re.subn(r"^PORT=.*$", f"PORT={port}", original, flags=re.MULTILINE)
    assert count == 1, "no PORT line in the env file"
    data = content.encode()
    info = tarfile.TarInfo("backend.env")
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o600, uid, gid, time.time()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wait_for_health(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing healthy on port {port}")
        time.sleep(0.5)


def start_hosts(services: dict, source: str, names: list[str]) -> dict[str, int]:
    """Copies of the source host, each with its app on its own port and the instance role; returns name -> port."""
    original = stack.host_exec(source, "cat", ENV_FILE)
    uid, gid = (int(v) for v in stack.host_exec(source, "stat", "-c", "%u %g", ENV_FILE).split())
    podman("commit", "--quiet", source, SNAPSHOT)
    ports = {}
    for index, name in enumerate(names, start=1):
        port = BASE_PORT + index
        subprocess.run(["podman", "rm", "-f", name], env=stack.podman_env(), capture_output=True, check=False)
        podman(
            "create",
            "--name",
            name,
            "--systemd=always",
            "--network",
            "host",
            *stack.instance_profile(services),
            SNAPSHOT,
            "/sbin/init",
        )
        # --archive=false keeps the tar's owner (the app user) instead of giving the file to root.
        podman(
            "cp",
            "--archive=false",
            "-",
            f"{name}:/home/ubuntu/Flora/shared/",
            input=env_file_tar(original, port, uid, gid),
        )
        podman("start", name)
        ports[name] = port
    for name, port in ports.items():
        try:
            wait_for_health(port)
        except TimeoutError as e:
            raise TimeoutError(f"{e}:\n{diagnose(name)}") from e
    return ports


def diagnose(name: str) -> str:
    """What a fleet host's app is doing, for a failed test's report."""
    report = []
    for cmd in (
        ["systemctl", "--no-pager", "status", "pm2-ubuntu"],
        ["ls", "-ln", ENV_FILE, "/home/ubuntu/Flora/current/apps/backend/.env"],
        ["grep", "-c", "^PORT=", ENV_FILE],
        ["sh", "-c", "tail -n 30 /home/ubuntu/.pm2/logs/*.log /home/ubuntu/.pm2/pm2.log 2>&1"],
    ):
        proc = subprocess.run(
            ["podman", "exec", name, *cmd], env=stack.podman_env(), capture_output=True, text=True, check=False
        )
        report.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(report)


def remove_hosts(names: list[str]) -> None:
    for name in names:
        subprocess.run(["podman", "rm", "-f", name], env=stack.podman_env(), capture_output=True, check=False)
    subprocess.run(["podman", "rmi", "-f", SNAPSHOT], env=stack.podman_env(), capture_output=True, check=False)


class Balancer:
    """HAProxy on 127.0.0.1:BASE_PORT over the hosts, with its runtime API on a unix socket."""

    def __init__(self, work: Path, ports: dict[str, int]):
        self.socket_path = work / "haproxy.sock"
        self.servers = {name: f"s{index}" for index, name in enumerate(ports, start=1)}
        lines = [
            "global",
            f"  stats socket {self.socket_path} mode 600 level admin",
            "defaults",
            "  mode http",
            "  timeout connect 2s",
            "  timeout client 30s",
            "  timeout server 30s",
            "  retries 3",
            "  option redispatch",
            "frontend flora",
            f"  bind 127.0.0.1:{BASE_PORT}",
            "  default_backend flora_backend",
            "backend flora_backend",
            "  balance roundrobin",
            "  option httpchk GET /api/health",
        ]
        lines += [f"  server {self.servers[name]} 127.0.0.1:{port} check inter 1s" for name, port in ports.items()]
        self.config = work / "haproxy.cfg"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["haproxy", "-db", "-f", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_health(BASE_PORT, timeout=30)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(self.socket_path))
            client.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def set_admin_state(self, host: str, state: str) -> None:
        """ready: takes new requests; maint: none (the ones it is answering finish)."""
        self.command(f"set server flora_backend/{self.servers[host]} state {state}")


class TargetGroupFollower(threading.Thread):
    """Keeps the balancer in step with the target group, and records who was out of it when."""

    def __init__(self, elb, target_group_arn: str, targets: dict[str, str], balancer: Balancer):
        super().__init__(daemon=True)
        self.elb, self.arn, self.balancer = elb, target_group_arn, balancer
        self.host_of = {instance_id: host for host, instance_id in targets.items()}
        self.state = dict.fromkeys(targets, "healthy")
        self.events: list[tuple[str, str]] = []
        self.most_out = 0
        self._stop_event = threading.Event()

    def poll(self) -> None:
        health = self.elb.describe_target_health(TargetGroupArn=self.arn)["TargetHealthDescriptions"]
        registered = {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in health}
        for instance_id, host in self.host_of.items():
            state = registered.get(instance_id, "unused")
            if state != self.state[host]:
                self.balancer.set_admin_state(host, "ready" if state == "healthy" else "maint")
                self.state[host] = state
                self.events.append((host, state))
        self.most_out = max(self.most_out, sum(state != "healthy" for state in self.state.values()))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.poll()
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def write_inventory(directory: Path, services: dict, ports: dict[str, int], targets: dict[str, str], arn: str) -> Path:
    """The test host's group_vars plus the fleet: podman connection, per-host ports and targets."""
    (directory / "group_vars").mkdir(parents=True)
    variables = yaml.safe_load((services["inventory"] / "group_vars" / "all.yml").read_text())
    variables.update(
        {
            "backend_redeploy_target_group_arn": arn,
            "backend_redeploy_target_drain_timeout": 30,
            "backend_redeploy_target_healthy_timeout": 60,
        }
    )
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables))
    hosts = {}
    for name, port in ports.items():
        hosts[name] = {
            "ansible_connection": "containers.podman.podman",
            "ansible_python_interpreter": "/usr/bin/python3",
            "app_env_extra_literals": {"PORT": str(port)},
            "backend_redeploy_health_url": f"http://127.0.0.1:{port}/api/health",
            "backend_redeploy_smoke_checks": [
                {
                    "name": "Stripe webhook refuses an unsigned call",
                    "url": f"http://127.0.0.1:{port}/api/webhooks/stripe",
                    "method": "POST",
                    "body": "{}",
                    "status": 400,
                }
            ],
            "backend_redeploy_target_id": targets[name],
        }
    (directory / "hosts.yml").write_text(yaml.safe_dump({"flora_backend": {"hosts": hosts}}))
    return directory / "hosts.yml"


@contextmanager
def fleet(services: dict, source: str, size: int = 3) -> Iterator[dict]:
    """Hosts, target group, balancer and follower; yields what the tests need."""
    names = [f"flora-fleet-{index}" for index in range(1, size + 1)]
    with ExitStack() as cleanup, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cleanup.callback(remove_hosts, names)
        ports = start_hosts(services, source, names)
        endpoint = services["endpoint"]
        ec2 = localaws.boto3_client("ec2", endpoint)
        elb = localaws.boto3_client("elbv2", endpoint)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        launched = ec2.run_instances(ImageId=image, InstanceType="t3.small", MinCount=size, MaxCount=size)
        targets = dict(zip(names, (i["InstanceId"] for i in launched["Instances"])))
        arn = elb.create_target_group(
            Name="flora-backend-fleet",
            Protocol="HTTP",
            Port=3001,
            VpcId=ec2.describe_vpcs()["Vpcs"][0]["VpcId"],
            TargetType="instance",
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": t, "Port": 3001} for t in targets.values()])
        stack.allow(services, target_group_arn=arn)
        balancer = Balancer(work, ports)
        balancer.start()
        cleanup.callback(balancer.stop)
        follower = TargetGroupFollower(elb, arn, targets, balancer)
        follower.start()
        cleanup.callback(follower.stop)
        inventory = write_inventory(work / "inventory", services, ports, targets, arn)
        yield {
            "names": names,
            "ports": ports,
            "targets": targets,
            "arn": arn,
            "elb": elb,
            "inventory": inventory,
            "follower": follower,
            "url": f"http://127.0.0.1:{BASE_PORT}/api/health",
        }
