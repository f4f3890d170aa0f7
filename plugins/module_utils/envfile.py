# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Env files that read back byte-for-byte through npm ``dotenv`` v16 and python-dotenv.

The two parsers disagree on escapes, so each value is written in the first form
that both read identically:

* single quotes: raw for npm dotenv; python-dotenv decodes ``\\\\`` and ``\\'``.
* double quotes with ``\\n``/``\\r`` escapes: the only escapes npm dotenv expands.
* unquoted: no escapes in either, but no ``#``, line breaks or outer spaces.

A value that fits none of them is refused rather than written wrongly.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# python-dotenv expands ${NAME} and ${NAME:-default} in every value, quoted or not.
_PYTHON_DOTENV_VARIABLE = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")

# npm dotenv 16's own line pattern and quote handling (lib/main.js), ported to Python re.
_NPM_DOTENV_LINE = re.compile(
    r"""(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)""",
    re.MULTILINE | re.ASCII,
)
_NPM_DOTENV_QUOTES = re.compile(r"""^(['"`])([\s\S]*)\1$""", re.MULTILINE)


class EnvFileError(ValueError):
    """A set of values that cannot be written as an env file; ``problems`` names each key."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def is_valid_key(key: str) -> bool:
    return bool(ENV_KEY.match(key))


def _fits_single_quotes(value: str) -> bool:
    # A trailing backslash would escape the closing quote for python-dotenv.
    return "'" not in value and "\r" not in value and "\\\\" not in value and not value.endswith("\\")


def _fits_double_quotes(value: str) -> bool:
    return '"' not in value and "\\" not in value


def _fits_unquoted(value: str) -> bool:
    return (
        value != "" and value == value.strip() and value[0] not in "'\"`" and not any(char in value for char in "#\r\n")
    )


def quote_value(value: str) -> str:
    """Return ``value`` as it is written after ``KEY=``; ValueError says why it cannot be."""
    if _PYTHON_DOTENV_VARIABLE.search(value):
        raise ValueError("it contains '${...}', which python-dotenv would expand as a variable")
    if _fits_single_quotes(value):
        return f"'{value}'"
    if _fits_double_quotes(value):
        return '"' + value.replace("\n", "\\n").replace("\r", "\\r") + '"'
    if _fits_unquoted(value):
        return value
    raise ValueError(
        "it mixes a single quote with characters that need double quotes or escapes "
        "(a double quote, a backslash, a line break, '#' or outer spaces), "
        "which npm dotenv and python-dotenv cannot both read back unchanged"
    )


def render_env_file(values: Mapping[str, str]) -> str:
    """Render sorted ``KEY='value'`` lines; raises EnvFileError naming every bad key or value."""
    problems = []
    lines = []
    for key in sorted(values):
        if not is_valid_key(key):
            problems.append(f"{key!r} is not a valid environment variable name")
            continue
        try:
            lines.append(f"{key}={quote_value(values[key])}")
        except ValueError as exc:
            problems.append(f"the value of {key} cannot be written to an env file: {exc}")
    if problems:
        raise EnvFileError(problems)
    return "".join(f"{line}\n" for line in lines)


def parse_env_text(text: str) -> dict[str, str]:
    """Read an env file the way the backend's npm dotenv 16 does (used for diffs of existing files)."""
    parsed = {}
    text = re.sub(r"\r\n?", "\n", text)
    for match in _NPM_DOTENV_LINE.finditer(text):
        value = (match.group(2) or "").strip()
        quote = value[:1]
        value = _NPM_DOTENV_QUOTES.sub(r"\2", value)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        parsed[match.group(1)] = value
    return parsed


def diff_keys(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[list[str], list[str], list[str]]:
    """Keys added, removed and changed between two parsed env files."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(key for key in set(before) & set(after) if before[key] != after[key])
    return added, removed, changed


def masked_listing(keys: Iterable[str], marks: Mapping[str, str] | None = None) -> str:
    """One ``KEY=<masked>`` line per key; ``marks`` adds a note (such as "changed") after a key."""
    marks = marks or {}
    lines = []
    for key in sorted(keys):
        note = f" ({marks[key]})" if key in marks else ""
        lines.append(f"{key}=<masked>{note}\n")
    return "".join(lines)


def write_atomically(path: str, content: str, mode: int, uid: int = -1, gid: int = -1) -> None:
    """Write through a private temporary file in the same directory, then rename over ``path``.

    The file never exists with looser permissions than ``mode`` or with partial content.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            os.fchmod(handle.fileno(), mode)
            if uid != -1 or gid != -1:
                os.fchown(handle.fileno(), uid, gid)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
