# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A package installed globally with npm: which version is there, read from its package.json."""

from __future__ import annotations

import json
import os


def package_dir(prefix: str, name: str) -> str:
    """Where ``npm install --global`` puts ``name`` on Linux: <prefix>/lib/node_modules/<name>."""
    return os.path.join(prefix, "lib", "node_modules", name)


def installed_version(prefix: str, name: str) -> str:
    """The version of the global ``name`` under ``prefix``; '' when it is not there or not readable."""
    try:
        with open(os.path.join(package_dir(prefix, name), "package.json"), encoding="utf-8") as handle:
            package = json.load(handle)
    except (OSError, ValueError):
        return ""
    version = package.get("version") if isinstance(package, dict) else None
    return version if isinstance(version, str) else ""
