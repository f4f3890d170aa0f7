"""Backend redeploys: playbooks/redeploy_backend.yml against the app's manual command sequence.

Both run on the same systemd test host in one run: ours serves on 3001 under PM2 cluster mode, the manual
checkout (as the app's redeploy script does it: git pull, pnpm install, build, pm2 restart in fork mode; a
one-line change needs no migration) on 3002. A steady load on each counts failed requests during its redeploy.
The app takes 1.5 s to start, never sends PM2 a ready message and exits at once on SIGINT, as the real one does.
Twice: with the fixture app as the tests use it, and with the fixture grown to the real app's weight
(bench/flora_sized.py), where installs and builds cost what they cost users. Each scenario runs three rounds,
alternating between the two, and reports medians.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from statistics import median

from bench import flora_sized
from tests.support import hostside, stack
from tests.support.load import SteadyLoad
from tests.support.memory import MemoryWatch

HOST = "flora-bench"
STARTUP_DELAY_MS = "1500"
# What the fixture's v2 commit answers on /api/health (tests/support/hostside.py's variants); each round's
# one-line change replaces it.
NEW_CODE = "Flora backend v2 is running"
ROUNDS = 3
MANUAL = "/home/ubuntu/Flora-manual"
MANUAL_SEQUENCE = (
    "set -e; cd {dir} && git fetch -q origin && git checkout -q {ref} && git pull -q origin {ref} && "
    "pnpm install --silent && pnpm --filter backend build >/dev/null && "
    "cd apps/backend && pm2 restart flora-manual >/dev/null"
)


# Steps of redeploy_backend.yml reported on their own, by task name (without the role's prefix).
STEPS = {
    "lock, fetch, env file and plan": "Take the deploy lock, resolve the ref, render the env file and decide",
    "unpack, install and build": "Unpack, install and build the commit unless its release is built",
    "migrations": "Apply database migrations",
    "PM2 reload, checks and record": (
        "Switch, reload PM2 without dropping requests, verify the workers, check and record"
    ),
}
# The steps of the one call that unpacks, installs and builds, as flora.deploy.release_dir returns them.
BUILD_STEPS = {"unpack": "Unpack", "install": "Install dependencies", "build": "Build"}
# The floors of the no-op: ansible-playbook's start-up and one call to the host that reads Parameter Store there;
# with one ping of the host instead; ansible-playbook's start-up alone.
SECRETS_PLAYBOOK = Path(__file__).with_name("read_secrets.yml")
PING_PLAYBOOK = Path(__file__).with_name("ping.yml")
START_UP_PLAYBOOK = Path(__file__).with_name("start_up.yml")


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def step_times(report: dict) -> dict[str, float]:
    """Seconds per step from the ansible.posix.json callback's report: the tasks' durations, and the build's steps
    as the module timed them."""
    times = dict.fromkeys([*STEPS, *BUILD_STEPS], 0.0)
    for play in report["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].rsplit(" : ", 1)[-1]
            duration = task["task"]["duration"]
            for step, task_name in STEPS.items():
                if name == task_name:
                    times[step] += seconds(duration["end"]) - seconds(duration["start"])
            for result in task["hosts"].values():
                for done in result.get("steps", []):
                    for step, step_name in BUILD_STEPS.items():
                        times[step] += done["seconds"] if done["name"] == step_name else 0.0
    return times


def as_app_user(script: str, env: dict) -> None:
    subprocess.run(
        [
            "podman",
            "exec",
            "--user",
            "ubuntu",
            "--workdir",
            "/home/ubuntu",
            "-e",
            "PM2_HOME=/home/ubuntu/.pm2",
            "-e",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "-e",
            "CI=true",
            HOST,
            "bash",
            "-c",
            script,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


def timed(action, url: str, answer: str) -> float:
    """Seconds from the start of action until url answers 200 with answer in its body.

    A redeploy is done when the new code serves: `pm2 restart` returns while the app is still starting, the
    playbook only once its checks have passed.
    """
    start = time.perf_counter()
    action()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200 and answer in response.read().decode():
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not answer {answer!r} within 120 s")


def setup_manual_checkout(local: dict) -> None:
    """The app's way: a clone that is built and restarted in place, run by PM2 in fork mode."""
    repo_url = (
        (local["inventory"] / "group_vars" / "all.yml").read_text().split("backend_release_repo_url: ")[1].split()[0]
    )
    as_app_user(
        f"set -e; git clone -q {repo_url} {MANUAL} && cd {MANUAL} && pnpm install --silent && "
        "pnpm --filter backend build >/dev/null && "
        f"sed -e 's/^PORT=.*/PORT=3002/' /home/ubuntu/Flora/shared/backend.env > apps/backend/.env && "
        f"echo FLORA_STARTUP_DELAY_MS={STARTUP_DELAY_MS} >> apps/backend/.env && "
        "cd apps/backend && pm2 start dist/index.js --name flora-manual >/dev/null",
        local["env"],
    )


def push_one_line_changes(origin: Path, rounds: int) -> list[str]:
    """Branches r1, r2, ... on the origin: v2 with its health message changed, one line from each other."""
    refs = []
    with tempfile.TemporaryDirectory(prefix="flora-rounds-") as work:
        clone = Path(work) / "flora"
        hostside.git(Path(work), "clone", "-q", "-b", "v2", str(origin), str(clone))
        for round_number in range(1, rounds + 1):
            ref = f"r{round_number}"
            hostside.git(clone, "checkout", "-q", "-b", ref, "v2")
            source = clone / "apps/backend/src/index.ts"
            source.write_text(source.read_text().replace(NEW_CODE, f"Flora backend {ref} is running"))
            hostside.git(clone, "commit", "-q", "-am", f"One-line change {ref}")
            hostside.git(clone, "push", "-q", "origin", ref)
            refs.append(ref)
    return refs


def push_dependency_change(origin: Path, base: str) -> str:
    """A branch "deps" on top of ``base`` that changes the backend's package.json, so it installs afresh."""
    source = hostside.source_of(origin, base, "apps/backend/src/index.ts")
    package = json.loads(hostside.source_of(origin, base, "apps/backend/package.json"))
    package["description"] = "Flora backend"
    hostside.push_commit(
        origin,
        base,
        "deps",
        {
            "apps/backend/package.json": json.dumps(package, indent=2) + "\n",
            "apps/backend/src/index.ts": re.sub(
                r"Flora backend \w+ is running", "Flora backend deps is running", source
            ),
        },
        "A dependency change",
    )
    return "deps"


def run(local: dict, app: str) -> list[str]:
    env = local["env"]
    reports = []

    def ours(ref: str) -> None:
        result = stack.playbook_run(local, "redeploy_backend.yml", "-e", f"backend_redeploy_ref={ref}")
        if result.rc != 0:
            raise SystemExit(repr(result))
        reports.append(result.report)

    def manual(ref: str) -> None:
        as_app_user(MANUAL_SEQUENCE.format(dir=MANUAL, ref=ref), env)

    def floor(playbook: Path) -> float:
        start = time.perf_counter()
        # An absolute path replaces playbooks/ in the playbook's path.
        result = stack.playbook(local, str(playbook))
        if result.returncode != 0:
            raise SystemExit(result.stdout[-4000:])
        return time.perf_counter() - start

    app_env = {"pm2_app_env": {"NODE_ENV": "production", "FLORA_STARTUP_DELAY_MS": STARTUP_DELAY_MS}}
    with MemoryWatch(HOST, stack.podman_env()) as bootstrap_memory:
        bootstrap = stack.playbook(local, "bootstrap_ec2.yml", "-e", json.dumps(app_env))
    if bootstrap.returncode != 0:
        raise SystemExit(bootstrap.stdout[-4000:])
    setup_manual_checkout(local)
    refs = push_one_line_changes(local["origin"], ROUNDS)
    time.sleep(3)

    # Rounds alternate between the two, so a machine that speeds up or slows down affects both alike.
    ours_url, manual_url = "http://127.0.0.1:3001/api/health", "http://127.0.0.1:3002/api/health"
    ours_change, manual_change, ours_noop, manual_noop, pings, start_ups = [], [], [], [], [], []
    secret_reads = []
    steps, noop_steps = [], []
    ours_loads, manual_loads = [], []
    for ref in refs:
        answer = f"Flora backend {ref} is running"
        with SteadyLoad(ours_url) as load:
            ours_change.append(timed(lambda ref=ref: ours(ref), ours_url, answer))
        ours_loads.append(load)
        steps.append(step_times(reports[-1]))
        with SteadyLoad(manual_url) as load:
            manual_change.append(timed(lambda ref=ref: manual(ref), manual_url, answer))
        manual_loads.append(load)
    for _round in refs:
        ours_noop.append(timed(lambda: ours(refs[-1]), ours_url, f"Flora backend {refs[-1]} is running"))
        noop_steps.append(step_times(reports[-1])["lock, fetch, env file and plan"])
        secret_reads.append(floor(SECRETS_PLAYBOOK))
        pings.append(floor(PING_PLAYBOOK))
        start_ups.append(floor(START_UP_PLAYBOOK))
        manual_noop.append(timed(lambda: manual(refs[-1]), manual_url, f"Flora backend {refs[-1]} is running"))

    # A dependency change: a fresh install and a full build, then the reload, on the t2.micro-sized host.
    dependency_ref = push_dependency_change(local["origin"], refs[-1])
    with MemoryWatch(HOST, stack.podman_env()) as dependency_memory, SteadyLoad(ours_url) as dependency_load:
        dependency_time = timed(lambda: ours(dependency_ref), ours_url, "Flora backend deps is running")

    def cell(times: list[float]) -> str:
        return f"{median(times):.1f} s ({', '.join(f'{t:.1f}' for t in times)})"

    def failed(loads: list[SteadyLoad]) -> str:
        return f"{sum(len(load.failures) for load in loads)} of {sum(load.sent for load in loads)}"

    change_steps = {step: median(round_steps[step] for round_steps in steps) for step in [*STEPS, *BUILD_STEPS]}
    in_build = ", ".join(f"{step} {change_steps.pop(step):.2f} s" for step in BUILD_STEPS)
    return [
        f"### Backend redeploy, {app}: redeploy_backend.yml vs the manual sequence (same host, app starts in 1.5 s)",
        f"Each time runs until the app serves the new code again; medians of {ROUNDS} rounds (each round in brackets).",
        "| scenario | manual (git pull, pnpm install, build, pm2 restart) | redeploy_backend.yml | ratio |",
        "|---|---|---|---|",
        (
            f"| one-line backend change | {cell(manual_change)} | {cell(ours_change)} "
            f"| {median(ours_change) / median(manual_change):.2f}x |"
        ),
        f"| nothing changed | {cell(manual_noop)} | {cell(ours_noop)} | {median(ours_noop) / median(manual_noop):.2f}x |",
        f"| failed requests during the changes | {failed(manual_loads)} | {failed(ours_loads)} | |",
        (
            f"| floor: a playbook that reads the app's parameters on the host (bench/read_secrets.yml) "
            f"| {cell(manual_noop)} | {cell(secret_reads)} | {median(secret_reads) / median(manual_noop):.2f}x |"
        ),
        (
            f"| floor: any playbook that reaches the host (bench/ping.yml) | {cell(manual_noop)} | {cell(pings)} "
            f"| {median(pings) / median(manual_noop):.2f}x |"
        ),
        (
            f"| floor: ansible-playbook with no task (bench/start_up.yml) | {cell(manual_noop)} | {cell(start_ups)} "
            f"| {median(start_ups) / median(manual_noop):.2f}x |"
        ),
        "",
        (
            "On the test host, limited as a t2.micro is (1 GiB, no swap): the bootstrap took "
            f"{bootstrap_memory.report()}; a redeploy with a dependency change (a fresh install and a full build) "
            f"took {dependency_time:.1f} s and {dependency_memory.report()}, with {failed([dependency_load])} "
            "requests failed."
        ),
        "",
        "Where redeploy_backend.yml's time went in the one-line change (medians): "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in change_steps.items())
        + f", everything else {median(ours_change) - sum(change_steps.values()):.1f} s (ansible-playbook start-up, "
        "the export and the tasks that run on the controller). "
        f"Inside the call that unpacks, installs and builds, as the module timed its steps: {in_build}; the rest of "
        "the call is Ansible's (building the module on the controller, sending it, starting it on the host). "
        "The PM2 reload replaces all workers at once, each old one only once its replacement listens; for an app "
        "that sends no ready message, as this one, PM2 calls a replacement done only once the old worker has "
        "stopped, so the reload takes the app's start-up and the old workers' stop; `pm2 restart` stops them all, "
        "then starts them.",
        "",
        (
            "In the redeploy with nothing to do, the call to the host that takes the lock, fetches, renders the env "
            f"file and releases the lock took {median(noop_steps):.1f} s (median). The floor rows are the least a playbook "
            "costs that reads the app's Parameter Store values on the host, as the redeploy must to know whether the "
            "secrets changed (ansible-playbook's start-up and one call to the host that reads them and renders an env "
            "file), the least any playbook that checks the host costs (its start-up and one ping of the host), and the "
            "least any ansible-playbook run costs (its start-up and a play with no task)."
        ),
    ]


def bench_app(app: str, grow=None) -> list[str]:
    with (
        tempfile.TemporaryDirectory(prefix="flora-bench-") as work,
        stack.local_stack(Path(work), HOST, grow) as local,
    ):
        stack.start_test_host(local)
        try:
            return run(local, app)
        finally:
            stack.remove_test_host(local)


def main() -> list[str]:
    stack.build_test_host_image()
    return bench_app("fixture app") + [""] + bench_app(f"Flora-sized app ({flora_sized.describe()})", flora_sized.grow)
