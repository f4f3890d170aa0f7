# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Env files written for the reader that loads them, so that every value reads back byte for byte.

Readers:

* ``dotenv``: npm ``dotenv`` 16, ``parse`` or ``config`` (the Flora backend's). It has no escapes but ``\\n`` and
  ``\\r`` in double quotes, turns every carriage return in the file into a line break, and ends an unquoted value
  at a ``#``. A value is written in the first of single quotes, double quotes (line breaks as ``\\n`` and ``\\r``),
  backticks or none that its parser, ported here from its source, reads back unchanged; the port is checked
  against the real package by the tests. It reads every form back changed for a value that holds every kind of
  quote with a ``#`` or a line break.
* ``python-dotenv``: python-dotenv 1.x, ``load_dotenv``/``dotenv_values`` with its variable expansion on (their
  default). Single or double quotes with escapes carry every value, except one holding ``${...}``, which it expands
  as a variable whatever the quoting and has no escape for.
* ``vite``: Vite's ``loadEnv`` (the frontend build): npm ``dotenv`` 16, then ``dotenv-expand``, which expands
  ``$NAME`` and ``${...}`` unless the ``$`` follows a backslash, and drops the backslash of each ``\\$``. Each ``$`` is
  written as ``\\$``, then as for ``dotenv``.

No reader can carry a NUL character (an environment string ends at it) or text that is not UTF-8: such a value is
refused, naming its key, as is a value its reader cannot carry. Nothing is written then.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
READERS = ("dotenv", "python-dotenv", "vite")

# python-dotenv's variable pattern (dotenv/variables.py): expanded in every value, quoted or not.
_PYTHON_DOTENV_VARIABLE = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")
# Characters no npm dotenv form misreads when unquoted.
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@%+,=~^-]+$")

# The characters of JavaScript's \s, which String.prototype.trim removes too, and its line terminators.
_JS_SPACE_CHARS = (
    "\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_SPACE = re.escape(_JS_SPACE_CHARS)
_JS_LINE_BREAK = "\n\r\u2028\u2029"
# npm dotenv 16's line pattern (lib/main.js), with JavaScript's \s, '.', '^' and '$' (flags m and g).
_NPM_DOTENV_LINE = re.compile(
    rf"(?:(?<=[{_JS_LINE_BREAK}])|\A)[{_JS_SPACE}]*(?:export[{_JS_SPACE}]+)?([\w.-]+)"
    rf"(?:[{_JS_SPACE}]*=[{_JS_SPACE}]*?|:[{_JS_SPACE}]+?)"
    rf"([{_JS_SPACE}]*'(?:\\'|[^'])*'|[{_JS_SPACE}]*\"(?:\\\"|[^\"])*\"|[{_JS_SPACE}]*`(?:\\`|[^`])*`|[^#\r\n]+)?"
    rf"[{_JS_SPACE}]*(?:#[^{_JS_LINE_BREAK}]*)?(?=[{_JS_LINE_BREAK}]|\Z)",
    re.ASCII,
)
_NPM_DOTENV_QUOTES = re.compile(r"""\A(['"`])([\s\S]*)\1\Z""")


class EnvFileError(ValueError):
    """A set of values that cannot be written as an env file; ``problems`` names each key."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def is_valid_key(key: str) -> bool:
    return bool(ENV_KEY.match(key))


def _check_environment_value(value: str) -> None:
    if "\x00" in value:
        raise ValueError("it contains a NUL character, which no environment variable can hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("it is not valid UTF-8 text") from e


def _quote_for_npm_dotenv(value: str) -> str:
    """The first of npm dotenv's forms that its parser (ported below) reads back as ``value``."""
    candidates = [
        f"'{value}'",
        '"' + value.replace("\n", "\\n").replace("\r", "\\r") + '"',
        f"`{value}`",
        value,
    ]
    for candidate in candidates:
        if _parse_npm_dotenv(f"KEY={candidate}\n") == {"KEY": value}:
            return candidate
    raise ValueError(
        "npm dotenv 16 reads it back changed in every form it has (single, double or back quotes, or none), as "
        "it does a value holding every kind of quote with a '#' or a line break"
    )


def _quote_for_python_dotenv(value: str) -> str:
    if _PYTHON_DOTENV_VARIABLE.search(value):
        raise ValueError("it contains '${...}', which python-dotenv expands as a variable and cannot escape")
    if "\r" not in value:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def quote_value(value: str, reader: str = "dotenv") -> str:
    """``value`` as it is written after ``KEY=`` for ``reader``; ValueError says why it cannot be."""
    _check_environment_value(value)
    if reader == "dotenv":
        return _quote_for_npm_dotenv(value)
    if reader == "python-dotenv":
        return _quote_for_python_dotenv(value)
    if reader == "vite":
        return _quote_for_npm_dotenv(value.replace("$", "\\$"))
    raise ValueError(f"unknown reader {reader!r} (known: {', '.join(READERS)})")


def render_env_file(values: Mapping[str, str], reader: str = "dotenv") -> str:
    """Sorted ``KEY=value`` lines for ``reader``; raises EnvFileError naming every bad key or value."""
    problems = []
    lines = []
    for key in sorted(values):
        if not is_valid_key(key):
            problems.append(f"{key!r} is not a valid environment variable name")
            continue
        try:
            lines.append(f"{key}={quote_value(values[key], reader)}")
        except ValueError as exc:
            problems.append(f"the value of {key} cannot be written for {reader}: {exc}")
    if problems:
        raise EnvFileError(problems)
    text = "".join(f"{line}\n" for line in lines)
    # Each line reads back on its own; the whole file must too.
    misread = sorted(key for key, value in parse_env_text(text, reader).items() if values.get(key) != value)
    if misread or set(parse_env_text(text, reader)) != set(values):
        raise EnvFileError([f"{reader} would misread the file around {', '.join(misread) or 'a key'}"])
    return text


def _parse_npm_dotenv(text: str) -> dict[str, str]:
    parsed = {}
    text = re.sub(r"\r\n?", "\n", text)
    for match in _NPM_DOTENV_LINE.finditer(text):
        value = (match.group(2) or "").strip(_JS_SPACE_CHARS)
        quote = value[:1]
        value = _NPM_DOTENV_QUOTES.sub(r"\2", value)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        parsed[match.group(1)] = value
    return parsed


_PY_BINDING = re.compile(
    r"""[^\S\r\n]*(?:export[^\S\r\n]+)?([^=\#\s]+)[^\S\r\n]*=[^\S\r\n]*"""
    r"""(?:'((?:\\.|[^'\\])*)'|"((?:\\.|[^"\\])*)"|([^\r\n]*))""",
    re.DOTALL,
)
_PY_ESCAPES = {"single": re.compile(r"\\[\\']"), "double": re.compile(r"""\\[\\'"abfnrtv]""")}
_PY_DECODE = {"\\\\": "\\", "\\'": "'", '\\"': '"', "\\n": "\n", "\\r": "\r", "\\t": "\t"}


def _parse_python_dotenv(text: str) -> dict[str, str]:
    """The bindings of the forms written here, as python-dotenv reads them (for diffs; no expansion)."""
    parsed = {}
    text = re.sub(r"\r\n?", "\n", text)
    position = 0
    while position < len(text):
        match = _PY_BINDING.match(text, position)
        line_end = text.find("\n", match.end() if match else position)
        if match:
            single, double, plain = match.group(2), match.group(3), match.group(4)
            if single is not None:
                value = _PY_ESCAPES["single"].sub(lambda m: _PY_DECODE[m.group(0)], single)
            elif double is not None:
                value = _PY_ESCAPES["double"].sub(lambda m: _PY_DECODE.get(m.group(0), m.group(0)), double)
            else:
                value = re.sub(r"\s+#.*", "", plain).rstrip()
            parsed[match.group(1)] = value
        position = len(text) if line_end < 0 else line_end + 1
    return parsed


def parse_env_text(text: str, reader: str = "dotenv") -> dict[str, str]:
    """Read an env file the way ``reader`` does (for the keys an update adds, removes and changes)."""
    if reader == "python-dotenv":
        return _parse_python_dotenv(text)
    parsed = _parse_npm_dotenv(text)
    if reader == "vite":
        return {key: value.replace("\\$", "$") for key, value in parsed.items()}
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
