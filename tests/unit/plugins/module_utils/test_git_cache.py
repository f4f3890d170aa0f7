from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.git_cache import (
    GitCacheError,
    RemoteRef,
    background_starter,
    start_fetch,
)

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}


def run(argv):
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def origin(tmp_path):
    """A repository with a commit on main and a tag."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@flora.example")
    git(repo, "config", "user.name", "Flora dev")
    (repo / "README").write_text("v1\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1.0.0")
    return repo


def commit(repo: Path, text: str) -> str:
    (repo / "README").write_text(text)
    git(repo, "commit", "-q", "-am", text)
    return git(repo, "rev-parse", "HEAD")


def recorded_start(calls: list):
    start = background_starter([], GIT_ENV)

    def recording(argv):
        calls.append(list(argv))
        return start(argv)

    return recording


def test_clones_a_missing_cache_then_fetches_and_resolves(tmp_path, origin):
    cache = str(tmp_path / "repo.git")
    calls = []
    fetch = start_fetch(run, recorded_start(calls), cache, str(origin), "v1.0.0")
    assert fetch.result() == (git(origin, "rev-parse", "v1.0.0^{commit}"), True)
    assert calls[0][:5] == ["git", f"--git-dir={cache}", "fetch", "--prune", "--quiet"]
    assert calls[0][-2:] == ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    assert git(Path(cache), "tag") == "v1.0.0"


def test_an_existing_cache_is_fetched_in_the_background(tmp_path, origin):
    cache = str(tmp_path / "repo.git")
    start_fetch(run, background_starter([], GIT_ENV), cache, str(origin), "main").result()
    new = commit(origin, "v2")
    git(origin, "branch", "feature")

    fetch = start_fetch(run, background_starter([], GIT_ENV), cache, str(origin), "main")
    assert fetch.result() == (new, False)
    assert git(Path(cache), "branch", "--format=%(refname:short)").split() == ["feature", "main"]


def test_a_ref_that_looks_like_an_option_is_still_a_ref(tmp_path, origin):
    cache = str(tmp_path / "repo.git")
    fetch = start_fetch(run, background_starter([], GIT_ENV), cache, str(origin), "--all")
    with pytest.raises(GitCacheError, match=f"^Unknown git ref '--all' in {origin}: no branch, tag or commit"):
        fetch.result()


def test_an_unknown_ref_is_an_error_naming_it(tmp_path, origin):
    cache = str(tmp_path / "repo.git")
    fetch = start_fetch(run, background_starter([], GIT_ENV), cache, str(origin), "nope")
    with pytest.raises(GitCacheError, match=f"^Unknown git ref 'nope' in {origin}: no branch, tag or commit has"):
        fetch.result()
    # The cache was cloned all the same, and a known ref resolves from it.
    assert start_fetch(run, background_starter([], GIT_ENV), cache, str(origin), "main").result()[1] is False


def test_a_clone_failure_names_the_last_error_line(tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(GitCacheError, match=f"^Cannot clone {missing} into ") as raised:
        start_fetch(run, background_starter([], GIT_ENV), str(tmp_path / "repo.git"), missing, "main")
    assert str(raised.value).endswith(f"fatal: repository '{missing}' does not exist")
    assert not (tmp_path / "repo.git").exists()


def test_a_fetch_failure_names_the_last_error_line(tmp_path, origin):
    cache = str(tmp_path / "repo.git")
    start_fetch(run, background_starter([], GIT_ENV), cache, str(origin), "main").result()
    missing = str(tmp_path / "missing")
    fetch = start_fetch(run, background_starter([], GIT_ENV), cache, missing, "main")
    with pytest.raises(GitCacheError, match=f"^Cannot fetch {missing} into {cache}: ") as raised:
        fetch.result()
    # git's advice after its errors ("Please make sure you have the correct access rights...") is left out.
    assert str(raised.value).endswith(
        f"into {cache}: fatal: '{missing}' does not appear to be a git repository; "
        "fatal: Could not read from remote repository."
    )


def test_the_background_process_gets_the_environment_and_its_errors_are_reported(tmp_path):
    (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
    start = background_starter(
        ["sh", "-c", 'echo "first line" >&2; echo "prompt=$GIT_TERMINAL_PROMPT" >&2; exit 3', "sh"], GIT_ENV
    )
    with pytest.raises(GitCacheError, match=r"Cannot fetch url into .*: prompt=0$"):
        start_fetch(run, start, str(tmp_path), "url", "main").result()


def state(pid: int) -> str:
    """A process's state letter (Z for a zombie), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def slow_fetch(tmp_path: Path):
    """A fetch whose process starts a child of its own and waits for it, as runuser does with git."""
    (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
    pid_file = tmp_path / "child.pid"
    start = background_starter(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait", "sh"], GIT_ENV)
    fetch = start_fetch(run, start, str(tmp_path), "url", "main")
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the child did not start"
        time.sleep(0.01)
    return fetch, int(pid_file.read_text())


def test_cancel_stops_the_fetch_and_its_children(tmp_path):
    fetch, child = slow_fetch(tmp_path)
    assert state(child) not in ("", "Z")
    fetch.cancel()
    deadline = time.monotonic() + 10
    while state(child) not in ("", "Z"):
        assert time.monotonic() < deadline, f"the fetch's child {child} still runs"
        time.sleep(0.01)
    # Cancelling again, or after the fetch ended, does nothing.
    fetch.cancel()


def test_without_its_process_group_the_child_would_outlive_the_fetch(tmp_path):
    """The control for the test above: killing only the fetch's own process leaves its child running."""
    fetch, child = slow_fetch(tmp_path)
    fetch._process.kill()
    fetch._process.wait()
    time.sleep(0.2)
    try:
        assert state(child) not in ("", "Z")
    finally:
        subprocess.run(["kill", "-9", str(child)], check=False)


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (
            "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused\n",
            "fatal: unable to connect to 127.0.0.1: 127.0.0.1[0: 127.0.0.1]: errno=Connection refused",
        ),
        (
            (
                "warning: redirecting\nfatal: 'x' does not appear to be a git repository\n"
                "fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\n"
                "and the repository exists.\n"
            ),
            "fatal: 'x' does not appear to be a git repository; fatal: Could not read from remote repository.",
        ),
        ("something went wrong\nlast words\n\n", "last words"),
        ("", "no error output"),
    ],
)
def test_git_errors_are_reported_without_its_advice(tmp_path, stderr, message):
    (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "stderr").write_text(stderr)
    start = background_starter(["sh", "-c", f"cat {tmp_path / 'stderr'} >&2; exit 128", "sh"], GIT_ENV)
    with pytest.raises(GitCacheError) as raised:
        start_fetch(run, start, str(tmp_path), "url", "main").result()
    assert str(raised.value) == f"Cannot fetch url into {tmp_path}: {message}"


def test_a_check_run_resolves_branches_tags_and_commits_without_writing(tmp_path, origin):
    git(origin, "tag", "-a", "v1.1.0", "-m", "annotated")
    main = git(origin, "rev-parse", "main")
    cache = tmp_path / "repo.git"

    # With no cache yet, a real run would clone it.
    assert RemoteRef(run, str(cache), str(origin), "main").result() == (main, True)
    # An annotated tag resolves to the commit it tags, not to the tag object.
    assert RemoteRef(run, str(cache), str(origin), "v1.1.0").result() == (main, True)
    assert RemoteRef(run, str(cache), str(origin), main).result() == (main, True)
    with pytest.raises(GitCacheError, match="Unknown git ref 'nope'"):
        RemoteRef(run, str(cache), str(origin), "nope").result()
    # A short commit id needs the cache to be told from an unknown ref.
    with pytest.raises(GitCacheError, match=f"Unknown git ref '{main[:10]}'"):
        RemoteRef(run, str(cache), str(origin), main[:10]).result()
    assert not cache.exists()

    start_fetch(run, background_starter([], GIT_ENV), str(cache), str(origin), "main").result()
    assert RemoteRef(run, str(cache), str(origin), main[:10]).result() == (main, False)
    with pytest.raises(GitCacheError, match="Cannot read the refs of"):
        RemoteRef(run, str(cache), str(tmp_path / "missing"), "main").result()
