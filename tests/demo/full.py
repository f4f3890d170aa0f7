"""make demo: the main job end to end on an embedded default.

A local AWS (moto server) with the Flora parameters, a bucket and a distribution; a local systemd test host
(podman) that reaches PostgreSQL, the fixture app's git repository and a stand-in CloudWatch agent package over
loopback; a local stand-in for the CloudFront distribution (nginx: /api/* to the backend, the rest from the
bucket). Then, as a user runs them: bootstrap the host, redeploy a new commit, redeploy again (the no-op),
redeploy a commit with a migration (checked and backed up first), restore the database from that backup,
publish a frontend build (invalidating what changed and loading the site in headless Chromium), publish again
(nothing to do), publish a second build and roll back to the first. Each step shows what the playbook said (its
messages and warnings) and its recap. Prints the site URL, the health URL, the release ledger and timings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support import cdn, localaws, stack

REPO = Path(__file__).resolve().parents[2]
HOST = "flora-demo"
HEALTH_URL = "http://127.0.0.1:3001/api/health"
BUCKET = "flora-frontend-demo"


def step(title: str, cmd: list[str], env: dict, timings: list) -> None:
    """Run one playbook; show what it said (its messages and Ansible's warnings, which go to standard error) and its
    recap."""
    print(f"\n=== {title} ===", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, check=False)
    timings.append((title, time.perf_counter() - start))
    said = [line.strip() for line in proc.stdout.splitlines() if '"msg":' in line or " : ok=" in line]
    warned = [line.strip() for line in proc.stderr.splitlines() if line.startswith("[WARNING]")]
    print("\n".join(warned + said))
    if proc.returncode != 0:
        print(proc.stdout[-6000:], proc.stderr[-2000:])
        raise SystemExit(f"{title} failed")


def stop(signum: int, _frame) -> None:
    """SIGTERM or SIGHUP (a closed terminal) stop the demo as Ctrl-C does: everything it started goes with it."""
    raise SystemExit(128 + signum)


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    stack.build_test_host_image()
    timings: list = []
    with tempfile.TemporaryDirectory(prefix="flora-demo-") as work, stack.local_stack(Path(work), HOST) as local:
        env = local["env"]
        distribution = localaws.create_site(local["endpoint"], BUCKET)
        stack.allow(local, frontend_bucket=BUCKET, distribution_id=distribution)
        site_url = stack_cdn = None
        stack.start_test_host(local)
        try:
            stack_cdn = cdn.local_cdn(local["endpoint"], BUCKET)
            site_url = stack_cdn.__enter__()
            step("Bootstrap the backend host (main)", stack.playbook_command(local, "bootstrap_ec2.yml"), env, timings)
            redeploy = stack.playbook_command(local, "redeploy_backend.yml", "-e", "backend_redeploy_ref=v2")
            step("Redeploy a new commit (v2)", redeploy, env, timings)
            step("Redeploy v2 again: nothing to do", redeploy, env, timings)
            migrate = stack.playbook_command(local, "redeploy_backend.yml", "-e", "backend_redeploy_ref=with-migration")
            step("Redeploy a commit with a migration: checked, backed up to S3, then applied", migrate, env, timings)
            restore = stack.playbook_command(
                local,
                "restore_database.yml",
                "-e",
                f"database_restore_release={local['commits']['with-migration']}",
                "-e",
                "database_restore_confirm=flora_db",
            )
            step("Restore the database from that backup, and v2 with it", restore, env, timings)
            site = {
                "frontend_publish_build": False,
                "frontend_publish_build_dir": str(REPO / "tests" / "fixtures" / "sample-build"),
                "frontend_publish_bucket": BUCKET,
                "frontend_publish_distribution_id": distribution,
                "frontend_publish_site_url": site_url,
                "frontend_publish_site_smoke_deep_links": ["/order-confirmation/123"],
            }
            publish = stack.playbook_command(local, "publish_frontend.yml", "-e", json.dumps(site))
            step("Publish the frontend, invalidate what changed, load the site in a browser", publish, env, timings)
            step("Publish again: nothing to do", publish, env, timings)
            # A second build (its index.html says so), then the first back from what the bucket keeps.
            second = Path(work) / "second-build"
            shutil.copytree(REPO / "tests" / "fixtures" / "sample-build", second)
            index = second / "index.html"
            index.write_text(index.read_text().replace("</body>", "<p>The second build.</p></body>"))
            publish_second = stack.playbook_command(
                local, "publish_frontend.yml", "-e", json.dumps({**site, "frontend_publish_build_dir": str(second)})
            )
            step("Publish a second build", publish_second, env, timings)
            rollback = stack.playbook_command(local, "rollback_frontend.yml", "-e", json.dumps(site))
            step("Roll the frontend back to the first build, load the site in a browser", rollback, env, timings)

            with urllib.request.urlopen(HEALTH_URL, timeout=5) as response:
                health = response.read().decode()
            ledger = json.loads(stack.host_exec(HOST, "cat", "/home/ubuntu/Flora/releases.json"))
            print(f"\nHealth: {HEALTH_URL} -> {health}")
            print(
                f"Local AWS: {local['endpoint']} (frontend bucket {BUCKET}, CloudFront distribution {distribution}, "
                f"backups in {stack.BACKUP_BUCKET})"
            )
            print("Release ledger (/home/ubuntu/Flora/releases.json on the host):")
            width = max(len(release.get("ref") or "-") for release in ledger["releases"])
            for release in ledger["releases"]:
                print(
                    f"  {release['commit'][:12]}  {release['status']:<8}  ref {release.get('ref') or '-':<{width}}  "
                    f"deployed {release.get('deployed_at', '-')}"
                )
            for backup in ledger.get("backups", []):
                print(
                    f"  backup s3://{backup['bucket']}/{backup['key']} ({backup['encryption']}), taken before "
                    f"{', '.join(backup['migrations'])} with {backup['schema_of'][:12]} live"
                )
            print("Timings:")
            for title, elapsed in timings:
                print(f"  {elapsed:6.1f} s  {title}")
            print(f"\nSite: {site_url} (the sample frontend; its /api calls reach the backend through the same origin)")
            if os.environ.get("FLORA_DEMO_KEEP"):
                # The local AWS authorizes every request: the emulator's usual keys are refused.
                deployer = local["identities"].deployer
                administrator = localaws.aws_environment(local["endpoint"])
                playbook = (
                    f"ANSIBLE_CONFIG={REPO}/ansible.cfg .venv/bin/ansible-playbook -i {local['inventory']}/hosts.yml"
                )
                branches = subprocess.run(
                    ["git", "-C", str(local["origin"]), "for-each-ref", "--format=%(refname:short)", "refs/heads"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                print(
                    f"\nThe host {HOST} and its services keep running until Ctrl-C (or SIGTERM). The local AWS "
                    "enforces IAM, as AWS does; to run the playbooks as the deployer, as the steps above did:"
                )
                print(f"  export AWS_ENDPOINT_URL={local['endpoint']} AWS_DEFAULT_REGION={localaws.REGION}")
                print(
                    f"  export AWS_ACCESS_KEY_ID={deployer.access_key_id} AWS_SECRET_ACCESS_KEY={deployer.secret_access_key}"
                )
                print(f"  {playbook} \\")
                print("    playbooks/redeploy_backend.yml -e backend_redeploy_ref=<branch of the app> --check")
                print(
                    f"  (the app's branches: {', '.join(branches)}; its repository, to push more to: {local['origin']})"
                )
                print(
                    "To publish a build directory of your own (change frontend_publish_build_dir), then put the build "
                    "before it back:"
                )
                print(f"  {playbook} \\")
                print(f"    playbooks/publish_frontend.yml -e '{json.dumps(site)}'")
                print(f"  {playbook} \\")
                print(f"    playbooks/rollback_frontend.yml -e '{json.dumps(site)}'")
                print("As an administrator, who may do anything:")
                print(
                    f"  export AWS_ACCESS_KEY_ID={administrator['AWS_ACCESS_KEY_ID']} "
                    f"AWS_SECRET_ACCESS_KEY={administrator['AWS_SECRET_ACCESS_KEY']}"
                )
                try:
                    while True:
                        time.sleep(3600)
                except (KeyboardInterrupt, SystemExit):
                    # Ctrl-C, or SIGTERM and SIGHUP (stop): the end this mode announces, not a failure.
                    pass
            else:
                print(
                    f"\nEverything stops now, {HOST} and the local AWS included: FLORA_DEMO_KEEP=1 make demo keeps "
                    "them running to look around."
                )
        finally:
            if stack_cdn is not None:
                stack_cdn.__exit__(None, None, None)
            stack.remove_test_host(local)
    return 0


if __name__ == "__main__":
    sys.exit(main())
