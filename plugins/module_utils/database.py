# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The app's PostgreSQL database as the host reaches it, for flora.deploy.pending_migrations and
flora.deploy.db_backup: its DATABASE_URL (from the env file the app reads) turned into libpq's environment, so no
password is on a command line; the migrations a commit holds that the database has not applied (Prisma's
``_prisma_migrations``); and the record of a backup in the release ledger.
"""

from __future__ import annotations

import posixpath
import re
import typing as t
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

# What Prisma records of each migration it applies (the migration's directory name).
APPLIED_QUERY = (
    "SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL FROM {table} ORDER BY started_at"
)
# A migration is prisma/migrations/<timestamp>_<name>/migration.sql.
MIGRATION_FILE = "migration.sql"
# libpq settings a Prisma URL may carry in its query string; Prisma's own (schema, connection_limit...) are not.
LIBPQ_QUERY_SETTINGS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}


class DatabaseError(Exception):
    pass


# The messages about DATABASE_URL quote no part of it: a password with a raw '/', '?' or '#' ends where the
# parser thinks the host, the port or the database begins.
ENCODE_THE_PASSWORD = "if its password has '/', '?', '#' or '@' in it, write them as %2F, %3F, %23 and %40"


@dataclass(frozen=True)
class Connection:
    """libpq's environment for the database (PGHOST, PGPASSWORD...) and the schema Prisma's tables are in."""

    environment: dict[str, str]
    database: str
    schema: str
    secrets: tuple[str, ...]


def connection_from_url(url: str) -> Connection:
    """The libpq environment of a ``postgresql://user:password@host:port/db?schema=...`` URL, as Prisma reads it."""
    if not url:
        raise DatabaseError("DATABASE_URL is empty")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DatabaseError(f"DATABASE_URL has an invalid host or port; {ENCODE_THE_PASSWORD}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseError("DATABASE_URL is not a postgresql:// URL")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database:
        raise DatabaseError(f"DATABASE_URL names no host or no database; {ENCODE_THE_PASSWORD}")
    if "@" in parts.path:
        raise DatabaseError(f"DATABASE_URL's database name holds an '@'; {ENCODE_THE_PASSWORD}")
    environment = {"PGHOST": parts.hostname, "PGDATABASE": database}
    if port:
        environment["PGPORT"] = str(port)
    secrets = []
    if parts.username:
        environment["PGUSER"] = unquote(parts.username)
    if parts.password:
        environment["PGPASSWORD"] = unquote(parts.password)
        secrets = [environment["PGPASSWORD"], parts.password]
    query = parse_qs(parts.query)
    for name, variable in LIBPQ_QUERY_SETTINGS.items():
        if name in query:
            environment[variable] = query[name][-1]
    schema = query.get("schema", ["public"])[-1]
    return Connection(environment, database, schema, tuple(secrets))


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def applied_query(schema: str) -> str:
    return APPLIED_QUERY.format(table=f"{quote_identifier(schema)}._prisma_migrations")


def migrations_table_query(schema: str) -> str:
    """A query printing t when Prisma's table exists (a database no migration ran on has none)."""
    return f"SELECT to_regclass({quote_literal(quote_identifier(schema) + '._prisma_migrations')}) IS NOT NULL"


def tables_query(schema: str) -> str:
    """A query printing the name of each table of ``schema``, one a line."""
    return f"SELECT tablename FROM pg_tables WHERE schemaname = {quote_literal(schema)}"


@dataclass(frozen=True)
class Applied:
    """What the database recorded: the migrations applied, and those that failed and are not resolved."""

    done: frozenset[str]
    failed: tuple[str, ...]


def parse_applied(psql_output: str) -> Applied:
    """``psql -At`` output of applied_query: one ``name|finished|rolled_back`` line per migration."""
    done, failed = set(), []
    for line in psql_output.splitlines():
        if not line.strip():
            continue
        name, finished, rolled_back = line.rsplit("|", 2)
        if rolled_back == "t":
            continue
        if finished == "t":
            done.add(name)
        else:
            failed.append(name)
    return Applied(frozenset(done), tuple(failed))


def migration_files(paths: t.Iterable[str], migrations_dir: str) -> dict[str, str]:
    """Migration name -> path, of the ``<migrations_dir>/<name>/migration.sql`` files among ``paths``."""
    root = migrations_dir.strip("/")
    found = {}
    for path in paths:
        parent, file_name = posixpath.split(path)
        if file_name == MIGRATION_FILE and posixpath.dirname(parent) == root:
            found[posixpath.basename(parent)] = path
    return dict(sorted(found.items()))


def pending_migrations(files: t.Mapping[str, str], applied: Applied) -> list[str]:
    """Names of the migrations in ``files`` the database has not applied, in the order Prisma applies them."""
    return [name for name in sorted(files) if name not in applied.done]


BACKUP_KEY_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def backup_key(prefix: str, database: str, release: str, taken_at: str) -> str:
    """The backup's object key, named after the release it was taken for: <prefix><db>/<release>-<time>.dump."""
    stamp = re.sub(r"[^0-9TZ]", "", taken_at)
    clean_prefix = prefix.strip("/")
    name = f"{BACKUP_KEY_SAFE.sub('-', database)}/{release}-{stamp}.dump"
    return f"{clean_prefix}/{name}" if clean_prefix else name


def record_backup(ledger: dict[str, t.Any], backup: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """A copy of ``ledger`` with ``backup`` listed in its backups (newest last)."""
    updated = dict(ledger)
    updated["backups"] = [*ledger.get("backups", []), dict(backup)]
    return updated


def find_backup(ledger: t.Mapping[str, t.Any], release: str | None = None, key: str | None = None) -> dict | None:
    """The newest backup recorded for ``release`` (the release it was taken before migrating to), or the one
    stored at ``key``; with neither, the newest backup."""
    for backup in reversed(ledger.get("backups", [])):
        if key and backup.get("key") != key:
            continue
        if release and not backup.get("release", "").startswith(release):
            continue
        return backup
    return None


def tables_in_listing(listing: str, schema: str) -> set[str]:
    """The tables of ``schema`` in ``pg_restore --list`` output (``<id>; <oid> <oid> TABLE <schema> <name> <owner>``)."""
    tables = set()
    for line in listing.splitlines():
        if line.startswith(";"):
            continue
        fields = line.split()
        if len(fields) >= 6 and fields[3] == "TABLE" and fields[4] == schema:
            tables.add(fields[5])
    return tables


def restore_script(pg_restore_sql: str, schema: str, extra_tables: t.Iterable[str]) -> str:
    """What psql runs in one transaction: the tables the backup does not hold dropped (created after it), then
    pg_restore's script, which drops and recreates what it holds."""
    drops = "".join(
        f"DROP TABLE IF EXISTS {quote_identifier(schema)}.{quote_identifier(name)} CASCADE;\n"
        for name in sorted(extra_tables)
    )
    return drops + pg_restore_sql


def error_lines(psql_stderr: str) -> str:
    """psql's error lines, without the DETAIL, CONTEXT, HINT and LINE lines after them, which may quote rows of the
    data (``CONTEXT:  COPY products, line 3: "..."``, ``DETAIL:  Key (email)=(...) already exists.``)."""
    kept = [
        line.strip()
        for line in psql_stderr.splitlines()
        if not line.lstrip().startswith(("DETAIL:", "CONTEXT:", "HINT:", "LINE "))
        and ("error:" in line.lower() or "FATAL:" in line)
    ]
    return "; ".join(kept) or "psql gave no error message"
