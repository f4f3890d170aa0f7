# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Path globs as git and the app's tooling write them, for deploy_plan's rules and the release install's key
(roles/backend_release/files/release_helper.py loads this file on the host: standard library only)."""

from __future__ import annotations

import re


def glob_to_regex(glob: str) -> str:
    """A path glob: `*` and `?` stay inside one directory, `**` spans directories (`a/**` matches `a` too)."""
    parts = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            parts.append("(?:/.*)?")
            i += 3
        elif glob.startswith("**", i):
            parts.append(".*")
            i += 2
        elif glob[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(glob[i]))
            i += 1
    return "^" + "".join(parts) + "$"
