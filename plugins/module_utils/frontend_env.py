# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a Vite build would bake into its public bundle, read before the build.

Vite exposes to the bundle the ``VITE_`` keys of the env files it loads for the build's mode (``.env``,
``.env.local``, ``.env.<mode>``, ``.env.<mode>.local``, each later one winning) and of its own environment, which
wins over every file. A key the app needs that is missing or empty, or a URL on the build machine's loopback
(the app's fallback API URL is ``http://localhost:3001/api``), would ship to every visitor.
"""

from __future__ import annotations

import ipaddress
import os
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

from ansible_collections.flora.deploy.plugins.module_utils.envfile import parse_env_text

ENV_PREFIX = "VITE_"
ENVIRONMENT_SOURCE = "the build's environment"
URL_SCHEMES = frozenset({"http", "https", "ws", "wss"})


@dataclass(frozen=True)
class EnvValue:
    value: str
    # The env file it comes from, or ENVIRONMENT_SOURCE.
    source: str


def vite_env_files(mode: str) -> list[str]:
    """The env files Vite loads for a mode, lowest priority first."""
    return [".env", ".env.local", f".env.{mode}", f".env.{mode}.local"]


def read_vite_env(env_dir: str, mode: str, environment: t.Mapping[str, str]) -> dict[str, EnvValue]:
    """The VITE_ keys the build would see, each with the value that wins and where it comes from."""
    values: dict[str, EnvValue] = {}
    for name in vite_env_files(mode):
        try:
            with open(os.path.join(env_dir, name), encoding="utf-8", errors="replace", newline="") as stream:
                text = stream.read()
        except FileNotFoundError:
            continue
        for key, value in parse_env_text(text, "vite").items():
            if key.startswith(ENV_PREFIX):
                values[key] = EnvValue(value, name)
    for key, value in environment.items():
        if key.startswith(ENV_PREFIX):
            values[key] = EnvValue(value, ENVIRONMENT_SOURCE)
    return values


def is_loopback_url(value: str) -> bool:
    """An http(s) or ws(s) URL whose host is the machine it runs on: localhost, 127.0.0.0/8, ::1 or 0.0.0.0."""
    try:
        parts = urlsplit(value.strip())
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if parts.scheme.lower() not in URL_SCHEMES or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def same_origin(value: str, site_url: str) -> bool:
    """Whether the URL ``value`` is on the origin (scheme, host and port) of ``site_url``."""
    if not site_url:
        return False
    url, site = urlsplit(value.strip()), urlsplit(site_url.strip())
    return (url.scheme, url.netloc.lower()) == (site.scheme, site.netloc.lower())


def env_problems(values: t.Mapping[str, EnvValue], required: t.Iterable[str], site_url: str = "") -> list[str]:
    """One phrase per key that would ship wrong: required and missing or empty, or a loopback URL that is not on
    the site's own origin (a site served from the build machine, as a local stand-in is, may call itself)."""
    problems = []
    for key in dict.fromkeys(required):
        found = values.get(key)
        if found is None:
            problems.append(f"{key} is not set")
        elif not found.value.strip():
            problems.append(f"{key} is empty ({found.source})")
    for key in sorted(values):
        found = values[key]
        if is_loopback_url(found.value) and not same_origin(found.value, site_url):
            problems.append(
                f"{key} is {found.value.strip()} ({found.source}), on the build machine's loopback, which each "
                "visitor's browser would take for its own machine"
            )
    return problems


def describe_problems(env_dir: str, mode: str, problems: t.Sequence[str]) -> str:
    files = vite_env_files(mode)
    return (
        f"The build of {env_dir} would bake into its public bundle: {'; '.join(problems)}. Vite reads "
        f"{', '.join(files[:-1])} and {files[-1]} there, then its environment, which wins."
    )
