# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Make a built backend release live on its host, for flora.deploy.release_activate.

Switch the ``current`` link to the release, reload the app's PM2 workers without dropping requests, check that
every worker runs from the release (PM2 resolves the link when a worker starts, so the directory of each
worker's process is what really runs, whatever the link says), then run the health and smoke checks.

The reload is pm2-reload-workers.js, which flora.deploy.pm2 installs on the host beside PM2: it replaces every
worker at once, each only once its successor is ready, and reports as soon as all successors are ready. It stays
behind until PM2 has stopped the old workers, holding the app's reload lock (<PM2_HOME>/reload-<app>.lock), so the
next reload of the app waits for them: a reload that starts while PM2 still stops the old workers of the previous
one makes PM2 lose track of workers.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import time
import typing as t
from dataclasses import dataclass

RELOAD_HELPER = "pm2-reload-workers.js"
# The helper's exit code when the app does not run as online cluster workers (or no daemon runs).
NOT_RUNNING_AS_WORKERS = 3


class ActivateError(Exception):
    """A step of the activation failed: ``step`` names it (reload, workers, checks)."""

    def __init__(self, step: str, msg: str):
        super().__init__(msg)
        self.step = step


def switch_link(link: str, target: str) -> str:
    """Point ``link`` at ``target`` atomically (a new link renamed over the old one); returns the name of the
    directory it pointed at before ('' when it was no link)."""
    try:
        before = os.path.basename(os.readlink(link).rstrip("/"))
    except OSError:
        before = ""
    staged = link + ".next"
    try:
        os.unlink(staged)
    except FileNotFoundError:
        pass
    os.symlink(target, staged)
    os.replace(staged, link)
    return before


def take_reload_lock(
    path: str,
    app: str,
    timeout: float,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
) -> int:
    """An open descriptor holding the app's reload lock (flock); waits up to ``timeout`` seconds for the helper
    of an earlier reload, which holds it until its old workers are gone."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    deadline = clock() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES) or clock() >= deadline:
                os.close(fd)
                raise ActivateError(
                    "reload", f"an earlier reload of {app} is still stopping its old workers after {int(timeout)} s"
                ) from e
        sleep(0.2)


@dataclass(frozen=True)
class Pm2:
    """Where PM2 and the reload helper are, and the environment PM2 commands run with."""

    node: str
    pm2: str
    module_dir: str
    helper: str
    env: dict[str, str]

    @classmethod
    def find(cls, helpers_dir: str, env: dict[str, str]) -> Pm2:
        path = env.get("PATH", os.defpath)
        node, pm2 = shutil.which("node", path=path), shutil.which("pm2", path=path)
        if not node or not pm2:
            raise ActivateError("reload", f"no {'node' if not node else 'pm2'} on PATH ({path})")
        helper = os.path.join(helpers_dir, RELOAD_HELPER)
        if not os.path.isfile(helper):
            raise ActivateError(
                "reload",
                f"{helper} is missing: install it with the flora.deploy.pm2 role (playbooks/bootstrap_ec2.yml)",
            )
        # <module>/bin/pm2 of npm's global install.
        module_dir = os.path.dirname(os.path.dirname(os.path.realpath(pm2)))
        return cls(node=node, pm2=pm2, module_dir=module_dir, helper=helper, env=env)


def parse_report(report: str) -> tuple[str, list[str]]:
    """The helper's report: ("reloaded", directories) or ("failed", [exit code]); ("silent", []) without one."""
    lines = [line for line in report.splitlines() if line.strip()]
    if not lines:
        return "silent", []
    if lines[0] == "reloaded":
        return "reloaded", lines[1:]
    if lines[0].startswith("failed "):
        return "failed", [lines[0].split(" ", 1)[1]]
    return "silent", []


def reload_workers(
    pm2: Pm2, app: str, ecosystem: str, batch: int, lock_fd: int, log_path: str, run: t.Callable
) -> list[str]:
    """Reload the app's workers and return the directory each online worker runs in.

    ``run(argv, env)`` -> (rc, stdout, stderr) runs a command to its end, without the reload lock. An app that does
    not run as online cluster workers is started, or reloaded, from its ecosystem file instead.
    """
    with open(log_path, "w", encoding="utf-8") as log:
        # A session of its own, away from the module's output: it outlives the module, and sudo's pty hangs up
        # the module's process group when the task ends. It alone keeps the reload lock once the module exits.
        helper = subprocess.Popen(
            [pm2.node, pm2.helper, pm2.module_dir, app, "reload", str(batch)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=pm2.env,
            pass_fds=(lock_fd,),
            start_new_session=True,
        )
        report = helper.stdout.read().decode("utf-8", "replace")
        helper.stdout.close()
    status, details = parse_report(report)
    if status == "reloaded":
        return details
    if status == "failed" and details == [str(NOT_RUNNING_AS_WORKERS)]:
        # PM2 may start its daemon here: it must not inherit the reload lock, and run() does not pass it on.
        rc, _out, err = run([pm2.pm2, "startOrReload", ecosystem, "--update-env"], pm2.env)
        if rc != 0:
            raise ActivateError("reload", f"pm2 startOrReload {ecosystem} failed: {last_line(err)}")
        rc, out, err = run([pm2.node, pm2.helper, pm2.module_dir, app, "list"], pm2.env)
        if rc != 0:
            raise ActivateError("reload", f"cannot list the workers of {app}: {last_line(err)}")
        return [line for line in out.splitlines() if line.strip()]
    helper.wait()
    reason = last_line(read_log(log_path)) or ("the reload stopped without a report" if status == "silent" else "")
    raise ActivateError("reload", f"the reload of {app} failed: {reason}")


def read_log(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def workers_elsewhere(dirs: t.Sequence[str], release_dir: str) -> list[str]:
    """The workers' directories that are not the release or inside it ('(none)' when no worker runs)."""
    if not dirs:
        return ["(none)"]
    inside = release_dir.rstrip("/") + "/"
    return [d for d in dirs if d != release_dir.rstrip("/") and not d.startswith(inside)]


def daemon_kill_signal(pm2_home: str) -> str | None:
    """The PM2_KILL_SIGNAL the running PM2 daemon was started with ('' when none); None when no daemon runs or
    its environment cannot be read."""
    try:
        with open(os.path.join(pm2_home, "pm2.pid"), encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except (OSError, ValueError):
        return None
    for entry in environ:
        if entry.startswith(b"PM2_KILL_SIGNAL="):
            return entry.split(b"=", 1)[1].decode("utf-8", "replace")
    return ""
