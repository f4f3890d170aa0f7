# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Check pending PostgreSQL migrations (Prisma's ``migration.sql`` files) before they are applied.

Two linters look at them: squawk (the ``squawk-cli`` package), run once over every migration, and the
collection's own rules for what squawk does not flag (TRUNCATE, DELETE or UPDATE of every row), read from
pglast's parse tree. pglast is PostgreSQL's own parser: it also locates each statement, so every finding names
the statement it is about.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
import typing as t
from dataclasses import dataclass

try:
    import pglast
    from pglast import ast as pg_ast
    from pglast.parser import ParseError
except ImportError:
    HAS_PGLAST = False
    PGLAST_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_PGLAST = True
    PGLAST_IMPORT_ERROR = None

SQUAWK_PACKAGE = "squawk-cli"
SQUAWK_BINARY = "squawk"
LINTER_SQUAWK = "squawk"
LINTER_OWN = "flora.deploy"

# squawk rules about style, or that every Prisma migration trips (Prisma writes SERIAL, INTEGER, TIMESTAMP(3),
# VARCHAR(n), enum values without BEFORE/AFTER, and no timeouts); none of them destroys data or locks a table.
DEFAULT_EXCLUDED_RULES: tuple[str, ...] = (
    "prefer-robust-stmts",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamp-tz",
    "ban-char-field",
    "require-lock-timeout",
    "require-statement-timeout",
    "require-enum-value-ordering",
    # Dropping NOT NULL keeps every row and takes a brief lock; the release still serving writes the column.
    "ban-drop-not-null",
)

RULE_TRUNCATE = "truncate-table"
RULE_DELETE = "delete-without-where"
RULE_UPDATE = "update-without-where"
RULE_SYNTAX = "syntax-error"
OWN_RULES: dict[str, str] = {
    RULE_TRUNCATE: "TRUNCATE removes every row of the table, under an ACCESS EXCLUSIVE lock.",
    RULE_DELETE: "DELETE without a WHERE that depends on the row removes every row of the table.",
    RULE_UPDATE: "UPDATE without a WHERE that depends on the row rewrites every row of the table and blocks "
    "writes to each until the migration commits.",
}

STATEMENT_DISPLAY_CHARS = 200
DEFAULT_ALLOW_HINT = (
    "Apply them anyway with allow_destructive=true, or by listing the migration in allowed_migrations, "
    "once you have checked what they do to the live database."
)

_LEADING_COMMENT = re.compile(r"\s*(--[^\n]*(\n|$)|/\*.*?\*/)", re.DOTALL)


class MigrationLintError(Exception):
    """The migrations could not be checked (the linter is missing or failed); not a finding about them."""


@dataclass(frozen=True)
class Migration:
    name: str
    path: str
    sql: str


@dataclass(frozen=True)
class Statement:
    """A statement of a migration: ``start`` and ``end`` are character offsets in its SQL, ``line`` is 1-based."""

    start: int
    end: int
    line: int
    text: str
    tree: t.Any = None


@dataclass(frozen=True)
class Finding:
    migration: str
    path: str
    line: int
    statement: str
    rule: str
    message: str
    linter: str

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "migration": self.migration,
            "path": self.path,
            "line": self.line,
            "statement": self.statement,
            "rule": self.rule,
            "message": self.message,
            "linter": self.linter,
        }


@dataclass(frozen=True)
class LintReport:
    checked: int
    refused: list[Finding]
    allowed: list[Finding]

    def to_result(self) -> dict[str, t.Any]:
        return {
            "checked": self.checked,
            "findings": [finding.to_dict() for finding in self.refused],
            "allowed": [finding.to_dict() for finding in self.allowed],
        }


def line_of(sql: str, offset: int) -> int:
    return sql.count("\n", 0, offset) + 1


def display_statement(text: str, limit: int = STATEMENT_DISPLAY_CHARS) -> str:
    """The statement on one line, shortened to ``limit`` characters."""
    collapsed = " ".join(text.split())
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 3].rstrip() + "..."


def skip_leading_comments(sql: str, start: int, end: int) -> int:
    """The offset of the first character in ``sql[start:end]`` that is neither whitespace nor a comment."""
    while True:
        match = _LEADING_COMMENT.match(sql, start, end)
        if not match:
            break
        start = match.end()
    while start < end and sql[start].isspace():
        start += 1
    return start


def _statement_at(sql: str, start: int, end: int, tree: t.Any = None) -> Statement:
    start = skip_leading_comments(sql, start, end)
    while end > start and sql[end - 1].isspace():
        end -= 1
    return Statement(start=start, end=end, line=line_of(sql, start), text=sql[start:end], tree=tree)


def split_statements(sql: str) -> list[Statement]:
    """The statements of ``sql`` as PostgreSQL parses them; raises pglast's ParseError for invalid SQL."""
    statements = []
    for raw in pglast.parse_sql(sql):
        # A statement length of 0 means "up to the end of the text".
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(sql)
        statements.append(_statement_at(sql, raw.stmt_location, end, raw.stmt))
    return statements


def statement_containing(statements: t.Sequence[Statement], offset: int) -> Statement | None:
    """The statement at ``offset``, or the last one before it (an offset between statements belongs to the one
    it follows)."""
    found = None
    for statement in statements:
        if statement.start > offset:
            break
        found = statement
    if found is None and statements:
        return statements[0]
    return found


def _walk(node: t.Any) -> t.Iterator[t.Any]:
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, pg_ast.Node):
        yield node
        for member in node:
            yield from _walk(getattr(node, member))


def applies_to_every_row(where: t.Any) -> bool:
    """Whether a WHERE clause lets every row through or none: absent, or naming no column (WHERE true,
    WHERE 1 = 1, WHERE EXISTS (SELECT 1 FROM other)), so it does not depend on the row."""
    return where is None or not any(isinstance(node, pg_ast.ColumnRef) for node in _walk(where))


def own_rule_violations(tree: t.Any) -> list[str]:
    """The collection's rules that a parsed statement breaks, each once; nested statements (a DELETE in a WITH,
    a rule's action) count."""
    rules = []
    for node in _walk(tree):
        if isinstance(node, pg_ast.TruncateStmt):
            rules.append(RULE_TRUNCATE)
        elif isinstance(node, pg_ast.DeleteStmt) and applies_to_every_row(node.whereClause):
            rules.append(RULE_DELETE)
        elif isinstance(node, pg_ast.UpdateStmt) and applies_to_every_row(node.whereClause):
            rules.append(RULE_UPDATE)
    return list(dict.fromkeys(rules))


def syntax_error_finding(migration: Migration, error: Exception) -> Finding:
    """A finding for SQL that PostgreSQL's parser rejects, pointing at the statement the error is in."""
    message = str(error.args[0]) if error.args else str(error)
    location = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], int) else 0
    location = min(max(location, 0), len(migration.sql))
    try:
        # The scanner alone still splits text the parser rejects.
        slices = pglast.split(migration.sql, with_parser=False, only_slices=True)
        spans = [_statement_at(migration.sql, part.start, part.stop) for part in slices]
    except ParseError:
        spans = []
    statement = statement_containing(spans, location)
    if statement is None:
        line_start = migration.sql.rfind("\n", 0, location) + 1
        line_end = migration.sql.find("\n", location)
        text = migration.sql[line_start : line_end if line_end >= 0 else len(migration.sql)]
    else:
        text = statement.text
    return Finding(
        migration=migration.name,
        path=migration.path,
        line=line_of(migration.sql, location),
        statement=display_statement(text),
        rule=RULE_SYNTAX,
        message=f"PostgreSQL cannot parse the migration ({message}), so it was not checked.",
        linter=LINTER_OWN,
    )


def find_squawk(explicit: str | None = None) -> str:
    """The squawk binary: ``explicit`` when given, else on PATH, else beside the running Python (its venv)."""
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise MigrationLintError(f"The squawk linter {explicit} does not exist or is not executable.")
    found = shutil.which(SQUAWK_BINARY)
    if found:
        return found
    beside_python = os.path.join(os.path.dirname(sys.executable), SQUAWK_BINARY)
    if os.path.isfile(beside_python) and os.access(beside_python, os.X_OK):
        return beside_python
    raise MigrationLintError(
        f"The squawk linter is not on PATH nor beside {sys.executable}. It is the {SQUAWK_PACKAGE} Python package "
        f"and must be installed on the controller (pip install {SQUAWK_PACKAGE}; it is in the collection's "
        "requirements)."
    )


def squawk_command(
    squawk: str,
    files: t.Sequence[str],
    *,
    config: str,
    excluded_rules: t.Sequence[str] = (),
    included_rules: t.Sequence[str] = (),
    assume_in_transaction: bool = True,
    pg_version: str | None = None,
) -> list[str]:
    command = [squawk, "--reporter", "json", "--config", config]
    if assume_in_transaction:
        command.append("--assume-in-transaction")
    if pg_version:
        command.append(f"--pg-version={pg_version}")
    if excluded_rules:
        command.append("--exclude=" + ",".join(excluded_rules))
    if included_rules:
        command.append("--include=" + ",".join(included_rules))
    return [*command, *files]


def squawk_file_name(index: int, name: str) -> str:
    # squawk expands glob patterns in its arguments: the name keeps only characters no pattern uses.
    return f"{index:04d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.sql"


def run_squawk(
    squawk: str,
    migrations: t.Sequence[Migration],
    *,
    excluded_rules: t.Sequence[str] = (),
    included_rules: t.Sequence[str] = (),
    assume_in_transaction: bool = True,
    pg_version: str | None = None,
) -> list[tuple[int, dict[str, t.Any]]]:
    """squawk's report over all ``migrations`` in one run: each entry with the index of the migration it is about."""
    if not migrations:
        return []
    index_of = {squawk_file_name(index, migration.name): index for index, migration in enumerate(migrations)}
    with tempfile.TemporaryDirectory(prefix="flora-migration-lint-") as workdir:
        for file_name, index in index_of.items():
            with open(os.path.join(workdir, file_name), "w", encoding="utf-8", newline="") as handle:
                handle.write(migrations[index].sql)
        # An empty configuration of our own, so no .squawk.toml around the working directory changes the rules.
        config = os.path.join(workdir, "squawk.toml")
        with open(config, "w", encoding="utf-8"):
            pass
        command = squawk_command(
            squawk,
            list(index_of),
            config=config,
            excluded_rules=excluded_rules,
            included_rules=included_rules,
            assume_in_transaction=assume_in_transaction,
            pg_version=pg_version,
        )
        try:
            done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
        except OSError as e:
            raise MigrationLintError(f"Could not run the squawk linter {squawk}: {e}") from e
    # squawk exits 1 when it reports something, and also on some errors: its JSON report tells them apart.
    report = None
    if done.returncode in (0, 1):
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = None
    if not isinstance(report, list):
        output = (done.stderr.strip() or done.stdout.strip() or "no output")[-2000:]
        raise MigrationLintError(f"The squawk linter {squawk} failed (exit code {done.returncode}): {output}")
    entries = []
    for entry in report:
        index = index_of.get(os.path.basename(str(entry.get("file", ""))))
        if index is None:
            raise MigrationLintError(f"The squawk linter reported on a file it was not given: {entry!r}")
        entries.append((index, entry))
    return entries


def offset_of(sql: str, line: int, column: int) -> int:
    """The character offset of squawk's 0-based ``line`` and ``column``; squawk counts the column in UTF-8 bytes."""
    lines = sql.split("\n")
    if line >= len(lines):
        return len(sql)
    start = sum(len(text) + 1 for text in lines[:line])
    prefix = lines[line].encode("utf-8")[: max(column, 0)]
    return start + len(prefix.decode("utf-8", errors="ignore"))


def squawk_finding(migration: Migration, statements: t.Sequence[Statement], entry: dict[str, t.Any]) -> Finding:
    line = int(entry.get("line") or 0)
    offset = offset_of(migration.sql, line, int(entry.get("column") or 0))
    statement = statement_containing(statements, offset)
    rule = str(entry.get("rule_name") or "")
    message = str(entry.get("message") or "").strip()
    if rule == RULE_SYNTAX:
        message = f"squawk cannot parse the statement ({message}), so it was not checked."
    elif entry.get("help"):
        message = f"{message.rstrip('.')}. {str(entry['help']).strip()}"
    return Finding(
        migration=migration.name,
        path=migration.path,
        line=line + 1,
        statement=display_statement(statement.text) if statement else "",
        rule=rule,
        message=message,
        linter=LINTER_SQUAWK,
    )


def lint_migrations(
    migrations: t.Sequence[Migration],
    *,
    excluded_rules: t.Iterable[str] = DEFAULT_EXCLUDED_RULES,
    included_rules: t.Iterable[str] = (),
    allow_destructive: bool = False,
    allowed_migrations: t.Iterable[str] = (),
    assume_in_transaction: bool = True,
    pg_version: str | None = None,
    squawk: str | None = None,
) -> LintReport:
    """Every finding about ``migrations``, split into the refused and the allowed ones.

    A finding is allowed when ``allow_destructive`` is set or its migration is in ``allowed_migrations``.
    Raises MigrationLintError when squawk is missing or fails, or when ``excluded_rules`` holds syntax-error.
    """
    if not HAS_PGLAST:
        raise MigrationLintError("The pglast Python package is required to check migrations.")
    included = list(dict.fromkeys(included_rules))
    # A rule asked for is checked, even one the default list excludes.
    excluded = [rule for rule in dict.fromkeys(excluded_rules) if rule not in included]
    if RULE_SYNTAX in excluded:
        raise MigrationLintError(
            f"The {RULE_SYNTAX} rule cannot be excluded: a migration PostgreSQL cannot parse is not checked at all. "
            "Allow that migration by name instead."
        )
    findings: list[list[Finding]] = [[] for _migration in migrations]
    statements_of: dict[int, list[Statement]] = {}
    for index, migration in enumerate(migrations):
        try:
            statements_of[index] = split_statements(migration.sql)
        except ParseError as e:
            findings[index].append(syntax_error_finding(migration, e))
            continue
        for statement in statements_of[index]:
            findings[index].extend(
                Finding(
                    migration=migration.name,
                    path=migration.path,
                    line=statement.line,
                    statement=display_statement(statement.text),
                    rule=rule,
                    message=OWN_RULES[rule],
                    linter=LINTER_OWN,
                )
                for rule in own_rule_violations(statement.tree)
                if rule not in excluded
            )

    # A migration PostgreSQL cannot parse already has its finding; squawk would only add its own parse errors.
    parsed = sorted(statements_of)
    if parsed:
        entries = run_squawk(
            find_squawk(squawk),
            [migrations[index] for index in parsed],
            excluded_rules=[rule for rule in excluded if rule not in OWN_RULES],
            included_rules=[rule for rule in included if rule not in OWN_RULES],
            assume_in_transaction=assume_in_transaction,
            pg_version=pg_version,
        )
        for position, entry in entries:
            index = parsed[position]
            findings[index].append(squawk_finding(migrations[index], statements_of[index], entry))

    allowed_names = set(allowed_migrations)
    refused: list[Finding] = []
    allowed: list[Finding] = []
    for index, migration in enumerate(migrations):
        is_allowed = allow_destructive or migration.name in allowed_names
        (allowed if is_allowed else refused).extend(ordered_findings(findings[index]))
    return LintReport(checked=len(migrations), refused=refused, allowed=allowed)


def ordered_findings(findings: t.Iterable[Finding]) -> list[Finding]:
    """Findings by line, each once; squawk's parser reports one syntax error per token it skips, we keep the
    first of each statement."""
    unique: dict[tuple[t.Any, ...], Finding] = {}
    for finding in sorted(findings, key=lambda f: (f.line, f.linter != LINTER_SQUAWK, f.rule)):
        if finding.rule == RULE_SYNTAX and finding.linter == LINTER_SQUAWK:
            key: tuple[t.Any, ...] = (finding.statement, finding.rule)
        else:
            key = (finding.line, finding.statement, finding.rule, finding.message)
        unique.setdefault(key, finding)
    return list(unique.values())


def finding_line(finding: Finding) -> str:
    return f"{finding.path}:{finding.line}: {finding.statement} [{finding.rule}] {finding.message}"


def refusal_message(refused: t.Sequence[Finding], hint: str = DEFAULT_ALLOW_HINT) -> str:
    """The failure message: one line per refused finding, then ``hint`` (how to allow them)."""
    lines = [f"{len(refused)} finding(s) in the pending migrations were refused:"]
    lines.extend(finding_line(finding) for finding in refused)
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def migrations_from_params(items: t.Iterable[t.Mapping[str, t.Any]]) -> list[Migration]:
    return [Migration(name=item["name"], path=item["path"], sql=item["sql"] or "") for item in items]
