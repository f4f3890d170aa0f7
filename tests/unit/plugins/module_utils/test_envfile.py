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


def test_every_tricky_value_reads_back_through_the_node_parser_port():
    text = render_env_file(TRICKY_VALUES)
    assert parse_env_text(text) == TRICKY_VALUES


def test_python_dotenv_reads_back_every_value(tmp_path):
    dotenv = pytest.importorskip("dotenv")
    path = tmp_path / "app.env"
    path.write_text(render_env_file(TRICKY_VALUES), encoding="utf-8")
    assert dict(dotenv.dotenv_values(path)) == TRICKY_VALUES


def test_output_is_sorted_and_stable():
    text = render_env_file({"B": "2", "A": "1"})
    assert text == "A='1'\nB='2'\n"
    assert render_env_file({"A": "1", "B": "2"}) == text


@pytest.mark.parametrize(
    "value, expected",
    [
        ("simple", "'simple'"),
        ("it's", '"it\'s"'),
        ("it's\nx", '"it\'s\\nx"'),
        ("a\\\\b", "a\\\\b"),
        ('he said "it\'s"', 'he said "it\'s"'),
    ],
)
def test_quote_value_picks_the_first_form_both_parsers_share(value, expected):
    assert quote_value(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        'it\'s "quoted"\nand multiline',
        "it's a \\ backslash with # hash",
        ' it\'s "padded" ',
        "${HOME}",
        "prefix ${DB_PASSWORD:-x} suffix",
    ],
)
def test_unrepresentable_values_fail_naming_the_key(value):
    with pytest.raises(EnvFileError) as excinfo:
        render_env_file({"GOOD": "x", "BAD_KEY_VALUE": value})
    assert "BAD_KEY_VALUE" in str(excinfo.value)
    assert "GOOD" not in str(excinfo.value)


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
