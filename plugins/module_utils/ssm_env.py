# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""SSM Parameter Store -> env values: fetching in as few calls as the API allows, and mapping to keys."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ansible_collections.flora.deploy.plugins.module_utils.envfile import is_valid_key

# GetParametersByPath pages and GetParameters batches are both capped at 10 by the API.
SSM_BATCH_SIZE = 10

_PLACEHOLDER = re.compile(r"\$\$|\$\{([^}|]*)(?:\|([^}]*))?\}|\$\{|\$")

_FILTERS = {
    "urlencode": lambda value: quote(value, safe=""),
    "upper": str.upper,
    "lower": str.lower,
}


class EnvMappingError(ValueError):
    """The parameters cannot be mapped to env keys; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str
    type: str = "String"

    @property
    def short_name(self) -> str:
        return self.name.rstrip("/").rsplit("/", 1)[-1]


def normalise_path(path: str) -> str:
    return "/" + path.strip("/")


def fetch_parameters_by_path(client: Any, path: str, recursive: bool = True) -> tuple[list[Parameter], int]:
    """Every parameter under ``path``, decrypted; returns them and the number of API calls made."""
    parameters = []
    calls = 0
    kwargs: dict[str, Any] = {
        "Path": normalise_path(path),
        "Recursive": recursive,
        "WithDecryption": True,
        "MaxResults": SSM_BATCH_SIZE,
    }
    while True:
        # One retried call per page, so a throttled page is retried alone.
        response = client.get_parameters_by_path(aws_retry=True, **kwargs)
        calls += 1
        parameters.extend(_to_parameter(item) for item in response.get("Parameters", []))
        token = response.get("NextToken")
        if not token:
            return parameters, calls
        kwargs["NextToken"] = token


def fetch_parameters_by_name(client: Any, names: Sequence[str]) -> tuple[list[Parameter], list[str], int]:
    """The named parameters, decrypted, in batches of 10; returns found, missing names and calls."""
    parameters: list[Parameter] = []
    missing: list[str] = []
    unique = list(dict.fromkeys(names))
    calls = 0
    for start in range(0, len(unique), SSM_BATCH_SIZE):
        batch = unique[start : start + SSM_BATCH_SIZE]
        response = client.get_parameters(aws_retry=True, Names=batch, WithDecryption=True)
        calls += 1
        parameters.extend(_to_parameter(item) for item in response.get("Parameters", []))
        missing.extend(response.get("InvalidParameters", []))
    return parameters, missing, calls


def _to_parameter(item: Mapping[str, Any]) -> Parameter:
    return Parameter(name=item["Name"], value=item["Value"], type=item.get("Type", "String"))


class ParameterIndex:
    """Find fetched parameters by full name or by last path segment."""

    def __init__(self, parameters: Sequence[Parameter]):
        self.by_name: dict[str, Parameter] = {}
        self.by_short: dict[str, list[Parameter]] = {}
        for parameter in parameters:
            if parameter.name in self.by_name:
                continue
            self.by_name[parameter.name] = parameter
            self.by_short.setdefault(parameter.short_name, []).append(parameter)

    def __iter__(self):
        return iter(sorted(self.by_name.values(), key=lambda parameter: parameter.name))

    def find(self, reference: str) -> tuple[Parameter | None, str | None]:
        """The parameter ``reference`` names, or None and why not."""
        if reference in self.by_name:
            return self.by_name[reference], None
        if reference.startswith("/"):
            return None, f"parameter {reference} was not found"
        matches = self.by_short.get(reference, [])
        if len(matches) == 1:
            return matches[0], None
        if not matches:
            return None, f"parameter {reference!r} was not found"
        names = ", ".join(sorted(parameter.name for parameter in matches))
        return None, f"{reference!r} is ambiguous: it names {names}; use the full name"


def render_template(template: str, index: ParameterIndex) -> tuple[str, list[str]]:
    """Expand ``${name}`` and ``${name|urlencode}``; ``$$`` is a literal ``$``; returns the value and problems."""
    problems: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "$$":
            return "$"
        if text in ("$", "${"):
            problems.append("a '$' that does not start ${name} (write $$ for a literal '$')")
            return ""
        reference = match.group(1).strip()
        parameter, problem = index.find(reference)
        if parameter is None:
            problems.append(problem or f"parameter {reference!r} was not found")
            return ""
        value = parameter.value
        for name in filter(None, (part.strip() for part in (match.group(2) or "").split("|"))):
            if name not in _FILTERS:
                problems.append(f"unknown filter {name!r} (known: {', '.join(sorted(_FILTERS))})")
                continue
            value = _FILTERS[name](value)
        return value

    return _PLACEHOLDER.sub(substitute, template), problems


@dataclass
class EnvMapping:
    """How fetched parameters become env keys."""

    rename: Mapping[str, str]
    exclude: Sequence[str]
    literals: Mapping[str, str]
    compose: Mapping[str, str]
    required: Sequence[str]


def build_env(parameters: Sequence[Parameter], mapping: EnvMapping) -> dict[str, str]:
    """Map parameters to env values; raises EnvMappingError naming every problem at once."""
    index = ParameterIndex(parameters)
    problems: list[str] = []
    sources: dict[str, list[str]] = {}
    values: dict[str, str] = {}

    def add(key: str, value: str, source: str) -> None:
        sources.setdefault(key, []).append(source)
        values[key] = value

    renamed: dict[str, str] = {}
    for reference, key in mapping.rename.items():
        parameter, problem = index.find(reference)
        if parameter is None:
            problems.append(f"rename: {problem}")
        else:
            renamed[parameter.name] = key
    excluded = set()
    for reference in mapping.exclude:
        parameter, problem = index.find(reference)
        if parameter is None:
            problems.append(f"exclude: {problem}")
        else:
            excluded.add(parameter.name)

    for parameter in index:
        if parameter.name in excluded:
            continue
        key = renamed.get(parameter.name, parameter.short_name.upper())
        if not is_valid_key(key):
            problems.append(
                f"parameter {parameter.name} gives the key {key!r}, which is not a valid environment "
                "variable name: map it with rename or leave it out with exclude"
            )
            continue
        add(key, parameter.value, f"parameter {parameter.name}")

    for key, value in mapping.literals.items():
        add(key, "" if value is None else str(value), "literals")
    for key, template in mapping.compose.items():
        value, template_problems = render_template(str(template), index)
        problems.extend(f"compose {key}: {problem}" for problem in template_problems)
        add(key, value, "compose")

    for key in sorted(sources):
        if not is_valid_key(key):
            problems.append(f"{key!r} ({sources[key][0]}) is not a valid environment variable name")
        if len(sources[key]) > 1:
            problems.append(f"key {key} would come from more than one place: {' and '.join(sources[key])}")

    missing = [key for key in mapping.required if key not in values]
    if missing:
        problems.append(f"required keys are missing: {', '.join(missing)}")
    if problems:
        raise EnvMappingError(problems)
    return values


def secret_values(parameters: Sequence[Parameter]) -> list[str]:
    """Decrypted SecureString values, to be masked in anything Ansible prints, each as it is and in every form a
    compose filter gives it (a password percent-encoded in DATABASE_URL is still the password)."""
    forms = []
    for parameter in parameters:
        if parameter.type == "SecureString" and parameter.value:
            forms.append(parameter.value)
            forms.extend(convert(parameter.value) for convert in _FILTERS.values())
    return list(dict.fromkeys(forms))
