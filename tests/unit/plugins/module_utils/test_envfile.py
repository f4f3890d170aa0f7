from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.envfile import (
    EnvFileError,
    diff_keys,
    masked_listing,
    parse_env_text,
    quote_value,
    render_env_file,
    write_atomically,
)

# Values the Flora secrets can hold; each must survive a write and a read.
TRICKY_VALUES = {
    "PLAIN": "sk_live_51Abc",
    "EMPTY": "",
    "SPACES": "  Flora Marketplace  ",
    "HASH": "abc#def # not a comment",
    "DOLLAR": "pa$$word $HOME $(id)",
    "SINGLE": "it's",
    "DOUBLE": 'say "hi"',
    "BOTH_QUOTES": 'he said "it\'s"',
    "NEWLINES": "-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----\n",
    "SINGLE_AND_NEWLINE": "it's\nmultiline",
    "CARRIAGE": "a\rb",
    "BACKSLASH": "C:\\path\\to",
    "DOUBLE_BACKSLASH": "a\\\\b",
    "TRAILING_BACKSLASH": "ends with\\",
    "BACKSLASH_N": "literal \\n stays",
    "EQUALS": "a=b==c",
    "UNICODE": "Café 🌸 花",
    "URL": "postgresql://user:p%40ss@host:5432/db?sslmode=require",
    "BACKTICK": "`cmd`",
}


@pytest.mark.parametrize("reader", ["dotenv", "python-dotenv", "vite"])
def test_every_tricky_value_reads_back_through_the_readers_port(reader):
    text = render_env_file(TRICKY_VALUES, reader)
    assert parse_env_text(text, reader) == TRICKY_VALUES


def test_python_dotenv_reads_back_every_value_written_for_it(tmp_path):
    dotenv = pytest.importorskip("dotenv")
    path = tmp_path / "app.env"
    path.write_text(render_env_file(TRICKY_VALUES, "python-dotenv"), encoding="utf-8")
    assert dict(dotenv.dotenv_values(path)) == TRICKY_VALUES


def test_output_is_sorted_and_stable():
    text = render_env_file({"B": "2", "A": "1"})
    assert text == "A='1'\nB='2'\n"
    assert render_env_file({"A": "1", "B": "2"}) == text


@pytest.mark.parametrize(
    ("reader", "value", "expected"),
    [
        ("dotenv", "simple", "'simple'"),
        # npm dotenv keeps a quote pair's content as it is once its quoted pattern gives up on the line.
        ("dotenv", "it's", "'it's'"),
        ("dotenv", 'he said "it\'s"', "'he said \"it's\"'"),
        ("dotenv", "'`\"", "''`\"'"),
        # Not across lines: a line break moves a single quote into double quotes.
        ("dotenv", "it's\nx", '"it\'s\\nx"'),
        ("python-dotenv", "it's \\ here", "'it\\'s \\\\ here'"),
        ("python-dotenv", 'a\rb"', '"a\\rb\\""'),
        ("vite", "pa$word ${X}", "'pa\\$word \\${X}'"),
    ],
)
def test_quote_value_picks_the_first_form_the_reader_reads_back(reader, value, expected):
    assert quote_value(value, reader) == expected


@pytest.mark.parametrize(
    ("reader", "value"),
    [
        ("dotenv", 'it\'s "quoted" `and` # multiline\nyes'),
        ("dotenv", "nul \x00 inside"),
        ("python-dotenv", "${HOME}"),
        ("python-dotenv", "prefix ${DB_PASSWORD:-x} suffix"),
        ("vite", "not utf-8 \udcff"),
    ],
)
def test_values_a_reader_cannot_carry_fail_naming_the_key(reader, value):
    with pytest.raises(EnvFileError) as excinfo:
        render_env_file({"GOOD": "x", "BAD_KEY_VALUE": value}, reader)
    (problem,) = excinfo.value.problems
    assert problem.startswith(f"the value of BAD_KEY_VALUE cannot be written for {reader}: ")


def test_npm_dotenv_needs_no_refusal_for_what_python_dotenv_expands():
    assert parse_env_text(render_env_file({"A": "${HOME}"}), "dotenv") == {"A": "${HOME}"}


def test_invalid_keys_are_refused():
    with pytest.raises(EnvFileError) as excinfo:
        render_env_file({"9LIVES": "x", "WITH-DASH": "y", "OK": "z"})
    assert excinfo.value.problems == [
        "'9LIVES' is not a valid environment variable name",
        "'WITH-DASH' is not a valid environment variable name",
    ]


def test_parse_reads_hand_written_files():
    text = "# comment\nexport A=1\nB = two words # trailing\nC=\"x\\ny\"\r\nD='q'\n"
    assert parse_env_text(text) == {"A": "1", "B": "two words", "C": "x\ny", "D": "q"}
    assert parse_env_text(text, "python-dotenv") == {"A": "1", "B": "two words", "C": "x\ny", "D": "q"}


def test_diff_keys_and_masking():
    added, removed, changed = diff_keys({"A": "1", "B": "2", "C": "3"}, {"A": "1", "B": "x", "D": "4"})
    assert (added, removed, changed) == (["D"], ["C"], ["B"])
    listing = masked_listing(["B", "A"], {"B": "changed"})
    assert listing == "A=<masked>\nB=<masked> (changed)\n"


def test_write_atomically_sets_mode_before_content_is_visible(tmp_path):
    dest = tmp_path / "app.env"
    dest.write_text("OLD=1\n")
    os.chmod(dest, 0o644)
    write_atomically(str(dest), "NEW='2'\n", 0o600)
    assert dest.read_text() == "NEW='2'\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["app.env"]


def test_write_atomically_leaves_the_old_file_when_writing_fails(tmp_path):
    dest = tmp_path / "app.env"
    dest.write_text("OLD=1\n")
    with pytest.raises(TypeError):
        write_atomically(str(dest), None, 0o600)  # type: ignore[arg-type]
    assert dest.read_text() == "OLD=1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["app.env"]
