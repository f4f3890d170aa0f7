"""make bench: flora.deploy against the tools the app uses today, on one local AWS, in one run.

Prints wall time, uploads and the ratio ours / today's for each scenario. Not part of make test:
timings depend on the machine; the tests assert behaviour, never time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import localaws

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FILES = int(os.environ.get("BENCH_FILES", "2000"))
TOTAL_BYTES = int(os.environ.get("BENCH_BYTES", str(25 * 1024 * 1024)))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def generate_build(dest: Path, changed_asset: int | None = None) -> None:
    """A Vite-like build: hashed assets, unhashed public files, index.html last; fresh mtimes every time."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "assets").mkdir(parents=True)
    (dest / "images").mkdir()
    rng = random.Random(2000)
    size = TOTAL_BYTES // FILES
    refs = []
    for i in range(FILES - 1):
        content = rng.randbytes(size)
        if i == changed_asset:
            content = b"// changed\n" + content
        if i % 10 == 0:
            path = dest / "images" / f"photo-{i}.jpg"
        else:
            digest = hashlib.sha256(content).hexdigest()[:8]
            path = dest / "assets" / f"chunk{i}-{digest}.js"
            refs.append(path.relative_to(dest).as_posix())
        path.write_bytes(content)
    scripts = "".join(f'<script type="module" src="/{ref}"></script>' for ref in refs[:50])
    (dest / "index.html").write_text(f"<!doctype html><html><head>{scripts}</head><body></body></html>")


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def cli_publish(build: Path, bucket: str, env: dict) -> tuple[float, int]:
    aws = str(BIN / "aws")
    t1, out1 = run(
        [
            aws,
            "s3",
            "sync",
            str(build),
            f"s3://{bucket}/",
            "--delete",
            "--no-progress",
            "--cache-control",
            "public,max-age=31536000,immutable",
            "--exclude",
            "index.html",
        ],
        env,
    )
    t2, _output = run(
        [
            aws,
            "s3",
            "cp",
            str(build / "index.html"),
            f"s3://{bucket}/index.html",
            "--cache-control",
            "public,max-age=60",
            "--no-progress",
        ],
        env,
    )
    uploads = len(re.findall(r"^upload: ", out1, re.MULTILINE)) + 1
    return t1 + t2, uploads


def ours_publish(build: Path, bucket: str, env: dict) -> tuple[float, int, list]:
    elapsed, out = run(
        [str(BIN / "ansible-playbook"), "bench/publish.yml", "-e", json.dumps({"src": str(build), "bucket": bucket})],
        env,
    )
    report = json.loads(re.search(r"BENCH (\{.*\})", out.replace('\\"', '"')).group(1))
    return elapsed, report["uploaded"], report["changed_keys"]


def row(name: str, cli: tuple, ours: tuple, cpu: tuple) -> str:
    ratio = ours[0] / cli[0]
    return (
        f"| {name} | {cli[0]:.2f} s, {cli[1]} uploads | {ours[0]:.2f} s, {ours[1]} uploads | {ratio:.2f}x "
        f"| {cpu[0]:.2f} s / {cpu[1]:.2f} s |"
    )


def bench_publish(endpoint: str, env: dict, work: Path) -> list[str]:
    """Scenarios (a), (b), (c) in ROUNDS rounds on fresh buckets; the median time of each, to damp noise.

    Also the CPU time the emulator spent serving each run: moto handles requests under one interpreter lock,
    so its CPU time is the floor under any client's wall time for the same requests.
    """
    s3 = localaws.boto3_client("s3", endpoint)
    build = work / "dist"
    results: dict[str, list[tuple]] = {}
    for round_number in range(ROUNDS):
        cli_bucket, ours_bucket = f"bench-cli-{round_number}", f"bench-ours-{round_number}"
        for bucket in (cli_bucket, ours_bucket):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": localaws.REGION})
        for scenario, changed_asset in (
            ("(a) first publish", None),
            ("(b) rebuild, same content", None),
            ("(c) rebuild, one asset changed", 1),
        ):
            generate_build(build, changed_asset=changed_asset)
            cpu_start = localaws.server_cpu_seconds(endpoint)
            cli = cli_publish(build, cli_bucket, env)
            cpu_cli = localaws.server_cpu_seconds(endpoint)
            ours = ours_publish(build, ours_bucket, env)
            cpu_ours = localaws.server_cpu_seconds(endpoint)
            results.setdefault(scenario, []).append((cli, ours, (cpu_cli - cpu_start, cpu_ours - cpu_cli)))
    lines = [
        f"### s3_publish vs aws s3 sync ({FILES} files, {TOTAL_BYTES / 2**20:.0f} MB, median of {ROUNDS} rounds)",
        "| scenario | aws s3 sync + cp | flora.deploy.s3_publish | ratio | emulator CPU serving them (CLI / ours) |",
        "|---|---|---|---|---|",
    ]
    for scenario, runs in results.items():
        cli = (statistics.median(run[0][0] for run in runs), runs[-1][0][1])
        ours = (statistics.median(run[1][0] for run in runs), runs[-1][1][1], runs[-1][1][2])
        cpu = (statistics.median(run[2][0] for run in runs), statistics.median(run[2][1] for run in runs))
        lines.append(row(scenario, cli, ours, cpu))
    first = results["(a) first publish"]
    floor = statistics.median(run[2][1] / run[0][0] for run in first)
    lines.append(
        f"(a) the emulator's CPU time serving s3_publish's requests alone is {floor:.2f}x the CLI's wall time:"
        " no client can publish faster than that here."
    )
    lines.append(
        f"(c) keys s3_publish uploaded: {', '.join(sorted(results['(c) rebuild, one asset changed'][-1][1][2]))}"
    )
    return lines


def bench_ssm_env(endpoint: str, env: dict, work: Path) -> list[str]:
    seeded = localaws.seed_flora_parameters(endpoint)
    aws = str(BIN / "aws")
    start = time.perf_counter()
    lines_written = []
    for name in sorted(seeded):
        _elapsed, value = run(
            [
                aws,
                "ssm",
                "get-parameter",
                "--name",
                name,
                "--with-decryption",
                "--query",
                "Parameter.Value",
                "--output",
                "text",
            ],
            env,
        )
        lines_written.append(f"{name.rsplit('/', 1)[-1].upper()}={value.strip()}")
    cli_time = time.perf_counter() - start
    ours_time, out = run(
        [str(BIN / "ansible-playbook"), "bench/ssm_env.yml", "-e", json.dumps({"dest": str(work / "bench.env")})], env
    )
    report = json.loads(re.search(r"BENCH (\{.*\})", out.replace('\\"', '"')).group(1))
    return [
        f"### ssm_env vs one aws ssm get-parameter process per parameter ({len(seeded)} parameters)",
        "| tool | wall time | API calls |",
        "|---|---|---|",
        f"| aws ssm get-parameter x{len(seeded)} | {cli_time:.2f} s | {len(seeded)} |",
        f"| flora.deploy.ssm_env (ansible-playbook) | {ours_time:.2f} s | {report['api_calls']} |",
        f"ratio ours / today's: {ours_time / cli_time:.2f}x",
    ]


def main() -> int:
    from bench import frontend, redeploy

    with tempfile.TemporaryDirectory() as tmp, localaws.moto_server(Path(tmp) / "moto.log") as endpoint:
        env = dict(os.environ)
        env.update(localaws.aws_environment(endpoint))
        env.update(
            {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections")}
        )
        lines = bench_publish(endpoint, env, Path(tmp)) + [""] + bench_ssm_env(endpoint, env, Path(tmp))
        lines += [""] + frontend.main(endpoint, env, Path(tmp))
    print("\n".join(lines), flush=True)
    print("\n" + "\n".join(redeploy.main()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
