"""The whole publish_frontend.yml against the app's script steps (aws s3 sync + aws s3 cp + invalidation).

On the sample build and on a generated 2,000-file build, after a rebuild with identical content and after a
one-file change, on one local AWS. Prints uploads, invalidated paths, wall time and ratios.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bench.__main__ import BIN, REPO, cli_publish, generate_build, run
from tests.support import localaws

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

    invalidation = result("Invalidate the changed paths")
    paths = [] if invalidation.get("skipped") else invalidation.get("paths", [])
    return elapsed, result("Publish the build to the bucket")["uploaded"], paths


def compare(name: str, source: Path | None, endpoint: str, env: dict, work: Path) -> list[str]:
    build = work / name
    lines = []
    cli_bucket, ours_bucket = f"bench-fe-cli-{name}", f"bench-fe-ours-{name}"
    cli_dist = localaws.create_site(endpoint, cli_bucket, comment=f"cli {name}")
    ours_dist = localaws.create_site(endpoint, ours_bucket, comment=f"ours {name}")

    def rebuild(change: bool) -> None:
        if source is None:
            generate_build(build, changed_asset=1 if change else None)
            return
        shutil.rmtree(build, ignore_errors=True)
        shutil.copytree(source, build)
        if change:
            (build / "images" / "Roses.jpg").write_bytes((source / "images" / "Roses.jpg").read_bytes() + b"\0")

    rebuild(False)
    script_steps(build, cli_bucket, cli_dist, env)
    playbook(build, ours_bucket, ours_dist, env, endpoint)
    for scenario, change in (("rebuild, same content", False), ("rebuild, one file changed", True)):
        rebuild(change)
        cli = script_steps(build, cli_bucket, cli_dist, env)
        ours = playbook(build, ours_bucket, ours_dist, env, endpoint)
        lines.append(
            f"| {name}: {scenario} | {cli[0]:.2f} s, {cli[1]} uploads, {cli[2]} | "
            f"{ours[0]:.2f} s, {ours[1]} uploads, {ours[2]} | {ours[0] / cli[0]:.2f}x |"
        )
    return lines


def main(endpoint: str, env: dict, work: Path) -> list[str]:
    lines = [
        "### publish_frontend.yml vs the app's script steps (sync + cp + invalidation)",
        "| build and scenario | script: time, uploads, invalidated | playbook: time, uploads, invalidated | ratio |",
        "|---|---|---|---|",
    ]
    lines += compare("sample", SAMPLE, endpoint, env, work)
    lines += compare("generated", None, endpoint, env, work)
    return lines
