"""Nothing in the repository reads outside its own checkout: a user's clone has nothing beside it.

Every tracked source, script, playbook and configuration file is searched for the ways a path reaches out of the
checkout: the directory above it (``REPO.parent``, ``../shared``), a sibling checkout's name, or an absolute path
of the machine the project was written on.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUFFIXES = {".py", ".sh", ".yml", ".yaml", ".cfg", ".toml", ".ini", ".js", ".json", ".j2"}
OUTSIDE = re.compile(
    r"""REPO\.parent|REPO\)\.parent|\.\./shared|["'/]work/(main|shared)|parents\[\d+\]\s*/\s*["']shared"""
)


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, text=True, check=True
    ).stdout.split("\0")
    files = [REPO / name for name in listed if name]
    return [f for f in files if f.is_file() and (f.suffix in SUFFIXES or f.name in ("Makefile", "run"))]


def test_no_tracked_file_reaches_outside_the_checkout():
    files = tracked_files()
    assert len(files) > 100
    reaching = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        if path.resolve() != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert reaching == []


def test_the_search_finds_what_it_looks_for():
    for line in (
        'SCHEMA = REPO.parent / "shared" / "schema.json"',
        "cat ../shared/reference/x",
        "x = '/work/shared/y'",
    ):
        assert OUTSIDE.search(line), line
    assert not OUTSIDE.search('SCHEMA = REPO / "tests" / "fixtures" / "schema.json"')
