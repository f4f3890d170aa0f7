from __future__ import annotations

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.git_cache import GitCacheError, fetch_and_resolve

COMMIT = "c" * 40


class FakeGit:
    """Answers git commands by their subcommand: {"clone": (rc, out, err), ...}; records each argv."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        subcommand = next(arg for arg in argv[1:] if not arg.startswith("--"))
        return self.answers.get(subcommand, (0, "", ""))


def test_clones_a_missing_cache_then_fetches_and_resolves(tmp_path):
    git = FakeGit(**{"rev-parse": (0, COMMIT + "\n", "")})
    repo = str(tmp_path / "repo.git")
    assert fetch_and_resolve(git, repo, "https://example/flora.git", "main") == (COMMIT, True)
    assert git.calls[0] == ["git", "clone", "--bare", "--quiet", "--", "https://example/flora.git", repo]
    assert git.calls[1][:5] == ["git", f"--git-dir={repo}", "fetch", "--prune", "--quiet"]
    assert "+refs/tags/*:refs/tags/*" in git.calls[1]
    # A ref that looks like an option is still a ref.
    assert git.calls[2][-2:] == ["--end-of-options", "main^{commit}"]


def test_an_existing_cache_is_only_fetched(tmp_path):
    (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
    git = FakeGit(**{"rev-parse": (0, COMMIT + "\n", "")})
    assert fetch_and_resolve(git, str(tmp_path), "url", "v1.4.0") == (COMMIT, False)
    assert [call[2] for call in git.calls] == ["fetch", "rev-parse"]


def test_an_unknown_ref_resolves_to_none(tmp_path):
    (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
    assert fetch_and_resolve(FakeGit(**{"rev-parse": (1, "", "")}), str(tmp_path), "url", "nope") == (None, False)


@pytest.mark.parametrize(
    ("failing", "message"),
    [("clone", "Cannot clone url into "), ("fetch", "Cannot fetch url into ")],
)
def test_clone_and_fetch_failures_name_the_last_error_line(tmp_path, failing, message):
    git = FakeGit(**{failing: (128, "", "warning: something\nfatal: repository 'url' not found\n\n")})
    with pytest.raises(GitCacheError, match=message) as raised:
        fetch_and_resolve(git, str(tmp_path / "repo.git"), "url", "main")
    assert str(raised.value).endswith("fatal: repository 'url' not found")
