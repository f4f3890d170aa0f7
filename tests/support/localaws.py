"""A local AWS for tests, benchmarks and the demo: the moto server as a separate process.

Everything talks to it over HTTP through the standard endpoint settings
(``AWS_ENDPOINT_URL`` or a module's ``endpoint_url``); nothing patches boto3.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from tests.support.hostside import stop_process

REPO = Path(__file__).resolve().parents[2]
REGION = "ap-southeast-2"
FLORA_PREFIX = "/flora/prod"

# The Flora app's parameters (shared/reference/flora-app.md) with demo values that
# exercise quoting and URL-encoding: a space, quotes, '#', '$', '@', '/', ':', '%'.
FLORA_STRING_PARAMETERS = {
    "db_username": "flora_app",
    "auth0_domain": "flora-demo.au.auth0.com",
    "auth0_client_id": "fLoRaClIeNtId0123456789",
    "auth0_audience": "https://api.flora.example",
    "stripe_publishable_key": "pk_test_51FloraPublishable",
    "stripe_weekly_price_id": "price_weekly_001",
    "stripe_biweekly_price_id": "price_biweekly_001",
    "stripe_monthly_price_id": "price_monthly_001",
    "stripe_spontaneous_price_id": "price_spontaneous_001",
    "gmail_user": "orders@flora.example",
}
FLORA_SECURE_PARAMETERS = {
    "db_password": "p@ss/w:rd%20#1 $HOME",
    "auth0_client_secret": "auth0-secret-'quoted' \"double\"",
    "stripe_secret_key": "sk_test_51FloraSecretKey",
    "stripe_webhook_secret": "whsec_FloraWebhookSecret",
    "gmail_password": "app password with spaces",
    "gemini_api_key": "AIzaFloraGeminiKey",
    "jwt_secret": "jwt=secret\\with\\backslashes",
}
DEMO_DB_ENDPOINT = "flora-db.cluster-demo.ap-southeast-2.rds.amazonaws.com"


def secret_forms(values) -> set[str]:
    """Each secret value as it is, as JSON writes it inside a string (the output of -vvv, job events) and
    percent-encoded (as in DATABASE_URL): the forms a leak would take."""
    return {form for value in values for form in (value, json.dumps(value)[1:-1], quote(value, safe=""))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# endpoint -> the access key and secret to use there instead of the emulator's default keys: an administrator's, on
# an emulator that authorizes every request (tests.support.identities.in_production).
OWN_KEYS: dict[str, tuple[str, str]] = {}


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """Environment for boto3, the AWS CLI and amazon.aws modules pointed at the local AWS."""
    key, secret = OWN_KEYS.get(endpoint_url, ("testing", "testing"))
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def wait_until_serving(endpoint_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server at {endpoint_url} did not start within {timeout}s")
            time.sleep(0.1)


def start_server(port: int, log_path: str | os.PathLike | None = None, authorizing: bool = False) -> subprocess.Popen:
    """The moto server; with authorizing, tests.support.iam_server's, which authorizes requests per resource once
    tests.support.identities.enforcing says so."""
    server = "tests.support.iam_server" if authorizing else "moto.server"
    with open(log_path or os.devnull, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", server, "-H", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}")
    except RuntimeError:
        proc.kill()
        raise
    return proc


@contextmanager
def moto_server(log_path: str | os.PathLike | None = None, authorizing: bool = False) -> Iterator[str]:
    port = free_port()
    proc = start_server(port, log_path, authorizing)
    endpoint = f"http://127.0.0.1:{port}"
    SERVER_PIDS[endpoint] = proc.pid
    try:
        yield endpoint
    finally:
        SERVER_PIDS.pop(endpoint, None)
        stop_process(proc)


# endpoint -> process ID of the moto servers this process started (the benchmarks read their CPU time).
SERVER_PIDS: dict[str, int] = {}


def server_cpu_seconds(endpoint_url: str) -> float:
    """CPU time (user + system) the moto server at endpoint_url has used so far."""
    fields = Path(f"/proc/{SERVER_PIDS[endpoint_url]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset(endpoint_url: str) -> None:
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def boto3_client(service: str, endpoint_url: str):
    import boto3

    env = aws_environment(endpoint_url)
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def seed_flora_parameters(endpoint_url: str, prefix: str = FLORA_PREFIX) -> dict[str, str]:
    """Put the Flora parameters under ``prefix``; returns name -> value."""
    ssm = boto3_client("ssm", endpoint_url)
    seeded = {}
    for kind, params in (("String", FLORA_STRING_PARAMETERS), ("SecureString", FLORA_SECURE_PARAMETERS)):
        for name, value in params.items():
            full = f"{prefix}/{name}"
            ssm.put_parameter(Name=full, Value=value, Type=kind, Overwrite=True)
            seeded[full] = value
    return seeded


def create_database_instance(endpoint_url: str, name: str) -> None:
    """An RDS PostgreSQL instance (moto's: nothing listens), for the snapshot before a migration."""
    boto3_client("rds", endpoint_url).create_db_instance(
        DBInstanceIdentifier=name,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="flora_admin",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
    )


def create_site(endpoint_url: str, bucket: str, comment: str = "flora frontend (demo)") -> str:
    """A frontend bucket and a CloudFront distribution in front of it; returns the distribution id."""
    s3 = boto3_client("s3", endpoint_url)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    cloudfront = boto3_client("cloudfront", endpoint_url)
    origin_domain = f"{bucket}.s3.{REGION}.amazonaws.com"
    response = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": f"flora-{bucket}",
            "Comment": comment,
            "Enabled": True,
            "Aliases": {"Quantity": 1, "Items": [f"{bucket}.flora.example"]},
            "DefaultRootObject": "index.html",
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {"Id": "frontend", "DomainName": origin_domain, "S3OriginConfig": {"OriginAccessIdentity": ""}}
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "frontend",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )
    return response["Distribution"]["Id"]


def expected_backend_env(site_url: str, db_address: str) -> dict[str, str]:
    """The Flora backend .env (shared/reference/flora-app.md) for the seeded parameters."""
    strings = FLORA_STRING_PARAMETERS
    secrets = FLORA_SECURE_PARAMETERS
    env = {name.upper(): value for name, value in {**strings, **secrets}.items()}
    del env["DB_USERNAME"], env["DB_PASSWORD"]
    env.update(
        {
            # db_password is 'p@ss/w:rd%20#1 $HOME': every reserved character encoded.
            "DATABASE_URL": f"postgresql://flora_app:p%40ss%2Fw%3Ard%2520%231%20%24HOME@{db_address}/flora_db",
            "SMTP_USER": strings["gmail_user"],
            "FROM_EMAIL": strings["gmail_user"],
            "CONTACT_EMAIL": strings["gmail_user"],
            "SMTP_PASS": secrets["gmail_password"],
            "NODE_ENV": "production",
            "PORT": "3001",
            "SMTP_HOST": "smtp.gmail.com",
            "SMTP_PORT": "587",
            "SMTP_SECURE": "false",
            "FROM_NAME": "Flora Marketplace",
            "EMAIL_INLINE_ITEM_IMAGES": "false",
            "FRONTEND_URL": site_url,
            "BACKEND_PUBLIC_URL": site_url,
            "EMAIL_IMAGE_BASE_URL": site_url,
            "EMAIL_LOGO_URL": site_url + "/flora-logo.png",
        }
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the moto server in the background")
    start.add_argument("--port", type=int, default=5000)
    start.add_argument("--state-dir", default=".cache/localaws")
    start.add_argument(
        "--authorizing",
        action="store_true",
        help="tests.support.iam_server's server, which authorizes each request once /moto-api/reset-auth gets 0",
    )
    stop = sub.add_parser("stop", help="stop a server started with 'start'")
    stop.add_argument("--state-dir", default=".cache/localaws")
    seed = sub.add_parser("seed", help="seed the Flora parameters, a bucket and a distribution")
    seed.add_argument("--endpoint-url", required=True)
    seed.add_argument("--bucket", default="flora-frontend-demo")
    args = parser.parse_args(argv)

    if args.command == "start":
        state = Path(args.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        pidfile = state / "moto.pid"
        if pidfile.exists():
            _stop(pidfile)
        proc = start_server(args.port, state / "moto.log", args.authorizing)
        pidfile.write_text(str(proc.pid))
        print(f"http://127.0.0.1:{args.port}")
    elif args.command == "stop":
        _stop(Path(args.state_dir) / "moto.pid")
    elif args.command == "seed":
        params = seed_flora_parameters(args.endpoint_url)
        distribution_id = create_site(args.endpoint_url, args.bucket)
        print(json.dumps({"parameters": sorted(params), "bucket": args.bucket, "distribution_id": distribution_id}))
    return 0


def _stop(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text())
        os.killpg(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass
    pidfile.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
