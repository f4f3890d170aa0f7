# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's bare clone of the app's repository: every branch and tag, fetched before each redeploy."""

from __future__ import annotations

import os
import typing as t

# run(argv) -> (rc, stdout, stderr), running git as the owner of the cache.
Run = t.Callable[[t.Sequence[str]], "tuple[int, str, str]"]


class GitCacheError(Exception):
    pass


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def fetch_and_resolve(run: Run, repo: str, url: str, ref: str) -> tuple[str | None, bool]:
    """Clone the cache if it is missing, fetch every branch and tag, and resolve ``ref`` to a commit.

    Returns the commit (None for a ref with no branch, tag or commit of that name) and whether the cache was
    cloned. Raises GitCacheError when git cannot clone or fetch.
    """
    cloned = False
    if not os.path.exists(os.path.join(repo, "HEAD")):
        rc, _out, err = run(["git", "clone", "--bare", "--quiet", "--", url, repo])
        if rc != 0:
            raise GitCacheError(f"Cannot clone {url} into {repo}: {_last_line(err)}")
        cloned = True
    refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    rc, _out, err = run(["git", f"--git-dir={repo}", "fetch", "--prune", "--quiet", "--", url, *refspecs])
    if rc != 0:
        raise GitCacheError(f"Cannot fetch {url} into {repo}: {_last_line(err)}")
    rc, out, _err = run(
        ["git", f"--git-dir={repo}", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
    )
    return (out.strip() if rc == 0 and out.strip() else None), cloned
