"""Services the test hosts reach over loopback: PostgreSQL, a git daemon with the fixture app, a file server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE_APP = REPO / "tests" / "fixtures" / "flora-app"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
            time.sleep(0.1)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a service started by the tests; kill it when it does not stop in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def shared_tmpdir(prefix: str) -> Path:
    """A directory under /var/tmp that other users (postgres, the test host's app user) can read."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path


@contextmanager
def postgres(database: str, user: str, password: str) -> Iterator[int]:
    """A private PostgreSQL cluster on a loopback port with one database and its owner; yields the port."""
    data = shared_tmpdir("flora-pg-")
    shutil.chown(data, "postgres", "postgres")
    port = free_port()

    def as_postgres(*cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True)

    as_postgres(
        str(PG_BIN / "initdb"),
        "-D",
        str(data / "db"),
        "-U",
        "postgres",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
    )
    as_postgres(
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-l",
        str(data / "postgres.log"),
        "-w",
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        literal = "'" + password.replace("'", "''") + "'"
        psql = ["psql", "-h", str(data), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]
        as_postgres(*psql, f'CREATE ROLE "{user}" LOGIN PASSWORD {literal}')
        as_postgres(*psql, f'CREATE DATABASE "{database}" OWNER "{user}"')
        yield port
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data / "db"),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


def git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="Flora",
        GIT_AUTHOR_EMAIL="dev@flora.example",
        GIT_COMMITTER_NAME="Flora",
        GIT_COMMITTER_EMAIL="dev@flora.example",
    )
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def _variant_v2(work: Path) -> None:
    _edit(work / "apps/backend/src/index.ts", '"Flora backend is running"', '"Flora backend v2 is running"')


def _variant_v3(work: Path) -> None:
    _edit(work / "apps/backend/src/index.ts", '"Flora backend is running"', '"Flora backend v3 is running"')


def _variant_broken_build(work: Path) -> None:
    _edit(
        work / "apps/backend/src/index.ts",
        "const port = Number(",
        "const port: number = Number(  this is not TypeScript",
    )


def _variant_unhealthy(work: Path) -> None:
    _edit(work / "apps/backend/src/index.ts", 'res.json({ status: "healthy"', 'res.status(500).json({ status: "broken"')


def _variant_bad_migration(work: Path) -> None:
    migration = work / "apps/backend/prisma/migrations/20250201000000_broken/migration.sql"
    migration.parent.mkdir(parents=True)
    migration.write_text("ALTER TABLE no_such_table ADD COLUMN price integer;\n")
    _variant_v2(work)


def _variant_with_migration(work: Path) -> None:
    """A new migration that keeps every row: a column with a default."""
    migration = work / "apps/backend/prisma/migrations/20250301000000_price/migration.sql"
    migration.parent.mkdir(parents=True)
    migration.write_text("ALTER TABLE products ADD COLUMN price integer NOT NULL DEFAULT 0;\n")
    _edit(work / "apps/backend/src/index.ts", '"Flora backend is running"', '"Flora backend with-migration is running"')


def _variant_new_package_json(work: Path) -> None:
    """A change to a file the install depends on, with the same dependencies: a new install all the same."""
    _edit(work / "apps/backend/package.json", '"private": true,', '"private": true,\n  "description": "Flora backend",')
    _edit(
        work / "apps/backend/src/index.ts", '"Flora backend is running"', '"Flora backend new-package-json is running"'
    )


# Branches of the fixture repository, each a commit on top of main.
VARIANTS = {
    "v2": _variant_v2,
    "v3": _variant_v3,
    "broken-build": _variant_broken_build,
    "unhealthy": _variant_unhealthy,
    "bad-migration": _variant_bad_migration,
    "with-migration": _variant_with_migration,
    "new-package-json": _variant_new_package_json,
}


def fixture_repository(base: Path, grow: Callable[[Path], None] | None = None) -> dict[str, str]:
    """A bare repository base/flora.git with main and the VARIANTS branches; returns branch -> commit.

    ``grow``, when given, changes the fixture app's working tree before the first commit.
    """
    work = base / "work"
    shutil.copytree(FIXTURE_APP, work, ignore=shutil.ignore_patterns("node_modules", "dist", ".env"))
    if grow is not None:
        grow(work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "Flora fixture app")
    commits = {"main": git(work, "rev-parse", "HEAD")}
    for branch, change in VARIANTS.items():
        git(work, "checkout", "-q", "-b", branch, "main")
        change(work)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", f"Fixture variant {branch}")
        commits[branch] = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "main")
    git(base, "clone", "-q", "--bare", str(work), str(base / "flora.git"))
    git(base / "flora.git", "remote", "remove", "origin")
    return commits


def push_commit(origin: Path, base: str, branch: str, changes: dict[str, str | None], message: str) -> str:
    """A new branch on the fixture app's bare repository ``origin``: ``base`` with ``changes`` (path -> new text, or
    None to delete the file) committed on top; returns the commit."""
    with tempfile.TemporaryDirectory(prefix="flora-push-") as work:
        clone = Path(work) / "flora"
        git(Path(work), "clone", "-q", "-b", base, str(origin), str(clone))
        git(clone, "checkout", "-q", "-b", branch)
        for path, text in changes.items():
            if text is None:
                (clone / path).unlink()
            else:
                (clone / path).parent.mkdir(parents=True, exist_ok=True)
                (clone / path).write_text(text)
        git(clone, "add", "-A")
        git(clone, "commit", "-q", "-m", message)
        git(clone, "push", "-q", "origin", branch)
        return git(clone, "rev-parse", "HEAD")


def source_of(origin: Path, ref: str, path: str) -> str:
    """A file of the fixture app at ``ref`` in the bare repository ``origin``."""
    return git(origin, "show", f"{ref}:{path}")


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """git:// on loopback serving the repositories under ``base``; yields the base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def file_server(directory: Path) -> Iterator[str]:
    """Plain HTTP on loopback for package downloads; yields the base URL."""
    port = free_port()
    proc = subprocess.Popen(
        ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(directory), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
