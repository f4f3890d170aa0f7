# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's bare clone of the app's repository: every branch and tag, fetched before each release is built.

flora.deploy.git_cache (the bootstrap) and flora.deploy.redeploy_preflight (a redeploy) fetch it with this.
The fetch waits on the network (a TLS handshake and the ref advertisement of the app's git host), so it can run
in the background while the caller reads Parameter Store: start_fetch() starts it, PendingFetch.result() waits
for it and resolves the ref, and PendingFetch.cancel() stops it on a failure, before the deploy lock is released.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import typing as t

# run(argv) -> (rc, stdout, stderr), running git as the owner of the cache.
Run = t.Callable[[t.Sequence[str]], "tuple[int, str, str]"]
# start(argv) -> a running subprocess.Popen with text stdout and stderr pipes, as the owner of the cache.
Start = t.Callable[[t.Sequence[str]], subprocess.Popen]

REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


class GitCacheError(Exception):
    pass


def _git_error(text: str) -> str:
    """git's errors: from its first "fatal:" or "error:" line to the blank line before its advice ("Please make
    sure you have the correct access rights..."), the lines that continue an error joined to it; else its last
    line."""
    errors: list[str] = []
    for line in text.strip().splitlines():
        line = line.strip()
        if line.startswith(("fatal:", "error:")):
            errors.append(line)
        elif errors and not line:
            break
        elif errors:
            errors[-1] += " " + line
    if errors:
        return "; ".join(errors)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no error output"


def background_starter(prefix: t.Sequence[str], environ_update: dict[str, str]) -> Start:
    """start(argv) running ``prefix + argv`` in a process group of its own, so cancel() can stop all of it
    (runuser, git and git's own helpers)."""

    def start(argv: t.Sequence[str]) -> subprocess.Popen:
        return subprocess.Popen(
            [*prefix, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **environ_update),
            text=True,
            errors="surrogateescape",
            start_new_session=True,
        )

    return start


class PendingFetch:
    """A fetch of the cache that may still be running; result() waits for it, cancel() stops it."""

    def __init__(self, run: Run, process: subprocess.Popen, repo: str, url: str, ref: str, cloned: bool):
        self._run = run
        self._process = process
        self._repo = repo
        self._url = url
        self._ref = ref
        self._cloned = cloned

    def result(self) -> tuple[str, bool]:
        """The commit ``ref`` names and whether the cache was cloned. Raises GitCacheError when the fetch failed or
        no branch, tag or commit has that name."""
        if self._process is not None:
            process, self._process = self._process, None
            _out, err = process.communicate()
            if process.returncode != 0:
                raise GitCacheError(f"Cannot fetch {self._url} into {self._repo}: {_git_error(err)}")
        rc, out, _err = self._run(
            [
                "git",
                f"--git-dir={self._repo}",
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{self._ref}^{{commit}}",
            ]
        )
        if rc != 0 or not out.strip():
            raise GitCacheError(f"Unknown git ref '{self._ref}' in {self._url}: no branch, tag or commit has that name")
        return out.strip(), self._cloned

    def cancel(self) -> None:
        """Stop a fetch still running and wait for it: git leaves the cache as it was (it updates refs last)."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.communicate()


class RemoteRef:
    """What a check run resolves instead of fetching: the ref as the remote advertises it, nothing written.

    A branch or a tag is read from ``git ls-remote``; a commit id is looked up in the cache when there is one, and a
    full one is taken as it is when there is none (a check run cannot tell whether the remote has it). result()
    says, as a fetch's does, whether the cache would be cloned.
    """

    def __init__(self, run: Run, repo: str, url: str, ref: str):
        self._run = run
        self._repo = repo
        self._url = url
        self._ref = ref

    def result(self) -> tuple[str, bool]:
        return self._commit(), not os.path.exists(os.path.join(self._repo, "HEAD"))

    def _commit(self) -> str:
        rc, out, err = self._run(["git", "ls-remote", "--", self._url])
        if rc != 0:
            raise GitCacheError(f"Cannot read the refs of {self._url}: {_git_error(err)}")
        advertised = dict(reversed(line.split("\t", 1)) for line in out.splitlines() if "\t" in line)
        for name in (f"refs/heads/{self._ref}", f"refs/tags/{self._ref}^{{}}", f"refs/tags/{self._ref}"):
            if name in advertised:
                return advertised[name]
        if os.path.exists(os.path.join(self._repo, "HEAD")):
            rc, out, _err = self._run(
                ["git", f"--git-dir={self._repo}", "rev-parse", "--verify", "--quiet", "--end-of-options",
                 f"{self._ref}^{{commit}}"]
            )  # fmt: skip
            if rc == 0 and out.strip():
                return out.strip()
        if len(self._ref) == 40 and all(char in "0123456789abcdef" for char in self._ref):
            return self._ref
        raise GitCacheError(f"Unknown git ref '{self._ref}' in {self._url}: no branch, tag or commit has that name")

    def cancel(self) -> None:
        """Nothing runs in the background."""


def start_fetch(run: Run, start: Start, repo: str, url: str, ref: str) -> PendingFetch:
    """Clone the cache if it is missing (waiting for that), then start fetching every branch and tag into it.

    Raises GitCacheError when git cannot clone, or cannot be started.
    """
    cloned = False
    if not os.path.exists(os.path.join(repo, "HEAD")):
        rc, _out, err = run(["git", "clone", "--bare", "--quiet", "--", url, repo])
        if rc != 0:
            raise GitCacheError(f"Cannot clone {url} into {repo}: {_git_error(err)}")
        cloned = True
    try:
        process = start(["git", f"--git-dir={repo}", "fetch", "--prune", "--quiet", "--", url, *REFSPECS])
    except OSError as e:
        raise GitCacheError(f"Cannot fetch {url} into {repo}: {e}") from e
    return PendingFetch(run, process, repo, url, ref, cloned)


def git_runners(module, user: str | None) -> tuple[Run, Start]:
    """run(argv) and start(argv) for git as ``user`` (the module's user when None, or in check mode when ``user``
    does not exist yet): one waits for git, the other leaves it running. Git never prompts for credentials."""
    prefix: list[str] = []
    if user:
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            if not module.check_mode:
                module.fail_json(msg=f"git_user {user!r} does not exist on this host")
            # A real run creates the user first; a check only reads the remote, as the module's user.
            uid = os.geteuid()
        if uid != os.geteuid():
            if os.geteuid() != 0:
                module.fail_json(msg=f"git_user {user!r} needs the module to run as root (become)")
            prefix = ["runuser", "-u", user, "--"]
    environ_update = {"GIT_TERMINAL_PROMPT": "0"}
    return (
        lambda argv: module.run_command(prefix + list(argv), environ_update=environ_update),
        background_starter(prefix, environ_update),
    )
