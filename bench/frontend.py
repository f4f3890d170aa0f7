"""The whole publish_frontend.yml against the app's script steps (aws s3 sync + aws s3 cp + invalidation).

On the sample build, a generated 2,000-file build and a build shaped like the real app's (tests/support/real_shaped.py):
the first publish, a rebuild with identical content and a rebuild with one change, on one local AWS. The
real-shaped build is published on loopback and again over an emulated link (30 ms round trip, 100 Mbit/s), as a
real publish crosses the internet to S3; the real-shaped rows are medians of ROUNDS rounds, each on new sites.
Prints uploads, invalidated paths, wall time and ratios.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

from bench import real_shaped
from bench.__main__ import BIN, REPO, ROUNDS, cli_publish, generate_build, run
from tests.support import localaws
from tests.support.real_shaped import build_size, generate

SAMPLE = REPO / "tests" / "fixtures" / "sample-build"


def script_steps(build: Path, bucket: str, distribution: str, env: dict) -> tuple[float, int, list]:
    """The app's frontend script after the build: sync, copy index.html, invalidate everything."""
    elapsed, uploads = cli_publish(build, bucket, env)
    start = time.perf_counter()
    run(
        [str(BIN / "aws"), "cloudfront", "create-invalidation", "--distribution-id", distribution, "--paths", "/*"], env
    )
    return elapsed + time.perf_counter() - start, uploads, ["/*"]


def playbook(build: Path, bucket: str, distribution: str, env: dict, endpoint: str) -> tuple[float, int, list]:
    variables = {
        "frontend_publish_build": False,
        "frontend_publish_build_dir": str(build),
        "frontend_publish_bucket": bucket,
        "frontend_publish_distribution_id": distribution,
        "flora_aws_endpoint_url": endpoint,
    }
    start = time.perf_counter()
    _elapsed, out = run(
        [str(BIN / "ansible-playbook"), "playbooks/publish_frontend.yml", "-e", json.dumps(variables)],
        dict(env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
    )
    elapsed = time.perf_counter() - start
    results = {
        task["task"]["name"]: task["hosts"]["localhost"] for play in json.loads(out)["plays"] for task in play["tasks"]
    }

    def result(name_part: str) -> dict:
        return next((value for name, value in results.items() if name_part in name), {})

    publish = result("Publish the build to the bucket")
    return elapsed, publish["uploaded"], publish["invalidation"]["paths"]


def sample_build(build: Path, version: int) -> None:
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(SAMPLE, build)
    if version:
        (build / "images" / "Roses.jpg").write_bytes((SAMPLE / "images" / "Roses.jpg").read_bytes() + b"\0")


def generated_build(build: Path, version: int) -> None:
    generate_build(build, changed_asset=1 if version else None)


SCENARIOS = (("first publish", 0), ("rebuild, same content", 0), ("rebuild, one change", 1))


def compare(name: str, rebuild, endpoint: str, env: dict, work: Path, rounds: int = 1) -> list[str]:
    """The script and the playbook, each on a site of its own, through SCENARIOS in turn; with several rounds, each
    on new sites, the median time of each scenario (each round in brackets)."""
    build = work / name
    times: dict[str, tuple[list[float], list[float]]] = {scenario: ([], []) for scenario, _version in SCENARIOS}
    last = {}
    for round_number in range(rounds):
        suffix = f"-{round_number}" if rounds > 1 else ""
        cli_bucket, ours_bucket = f"bench-fe-cli-{name}{suffix}", f"bench-fe-ours-{name}{suffix}"
        cli_dist = localaws.create_site(endpoint, cli_bucket, comment=f"cli {name}{suffix}")
        ours_dist = localaws.create_site(endpoint, ours_bucket, comment=f"ours {name}{suffix}")
        for scenario, version in SCENARIOS:
            rebuild(build, version)
            cli = script_steps(build, cli_bucket, cli_dist, env)
            ours = playbook(build, ours_bucket, ours_dist, env, endpoint)
            times[scenario][0].append(cli[0])
            times[scenario][1].append(ours[0])
            last[scenario] = (cli, ours)

    def cell(values: list[float]) -> str:
        each = f" ({', '.join(f'{value:.2f}' for value in values)})" if len(values) > 1 else ""
        return f"{statistics.median(values):.2f} s{each}"

    lines = []
    for scenario, _version in SCENARIOS:
        (cli_times, ours_times), (cli, ours) = times[scenario], last[scenario]
        invalidated = ours[2] if len(ours[2]) <= 3 else [*ours[2][:3], "..."]
        lines.append(
            f"| {name}: {scenario} | {cell(cli_times)}, {cli[1]} uploads, {cli[2]} | "
            f"{cell(ours_times)}, {ours[1]} uploads, {invalidated} | "
            f"{statistics.median(ours_times) / statistics.median(cli_times):.2f}x |"
        )
    return lines


def main(endpoint: str, env: dict, work: Path) -> list[str]:
    header = [
        "| build and scenario | script: time, uploads, invalidated | playbook: time, uploads, invalidated | ratio |",
        "|---|---|---|---|",
    ]
    files = generate(work / "real-shaped-probe")
    size = build_size(work / "real-shaped-probe")
    lines = ["### publish_frontend.yml vs the app's script steps (sync + cp + invalidation), on loopback", *header]
    lines += compare("sample", sample_build, endpoint, env, work)
    lines += compare("generated", generated_build, endpoint, env, work)
    lines += compare("real-shaped", generate, endpoint, env, work, ROUNDS)
    with real_shaped.emulated_link(endpoint) as link:
        link_env = dict(env, **localaws.aws_environment(link))
        lines += [
            "",
            "### publish_frontend.yml vs the app's script steps over an emulated link (30 ms round trip, 100 Mbit/s)",
            real_shaped.measure_link(link, "bench-link-probe"),
            *header,
        ]
        lines += compare("real-shaped-link", generate, link, link_env, work, ROUNDS)
    lines.append(
        f"The real-shaped build: {files['files']} files, {size / 2**20:.0f} MB ({files['hashed']} content-hashed under "
        f"assets/, {files['unhashed']} unhashed images, index.html); its one change is a shared component, which "
        "renames it, the ten routes that import it and the entry chunk."
    )
    return lines
