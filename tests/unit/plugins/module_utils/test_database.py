from __future__ import annotations

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.database import (
    Applied,
    DatabaseError,
    applied_query,
    backup_key,
    connection_from_url,
    error_lines,
    find_backup,
    migration_files,
    migrations_table_query,
    parse_applied,
    pending_migrations,
    record_backup,
    restore_script,
    tables_in_listing,
    tables_query,
)


def test_a_prisma_url_becomes_libpq_environment_with_the_password_decoded():
    connection = connection_from_url(
        "postgresql://flora_app:p%40ss%2Fw%3Ard%2520%231@db.example:5433/flora_db?schema=shop&sslmode=require"
    )
    assert connection.environment == {
        "PGHOST": "db.example",
        "PGPORT": "5433",
        "PGDATABASE": "flora_db",
        "PGUSER": "flora_app",
        "PGPASSWORD": "p@ss/w:rd%20#1",
        "PGSSLMODE": "require",
    }
    assert connection.schema == "shop" and connection.database == "flora_db"
    assert "p@ss/w:rd%20#1" in connection.secrets


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "DATABASE_URL is empty"),
        ("mysql://u:p@h/db", "not a postgresql:// URL"),
        ("postgresql://u:p@h:5432/", "names no host or no database"),
        ("postgresql://u:p@h:99999/db", "invalid host or port"),
    ],
)
def test_a_url_that_is_not_a_postgresql_database_is_named(url, problem):
    with pytest.raises(DatabaseError, match=problem):
        connection_from_url(url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        # The parser takes the password's start for the port.
        ("postgresql://flora_app:Sup3r/Secr3tPw@db.example:5432/flora_db", " has an invalid host or port"),
        # ... or for a port that parses, and the rest for the database.
        ("postgresql://flora_app:54321/Secr3tPw@db.example:5432/flora_db", "'s database name holds an '@'"),
        # ... and the rest for the query or the fragment.
        ("postgresql://flora_app:Sup3r?Secr3tPw@db.example:5432/flora_db", " has an invalid host or port"),
        ("postgresql://flora_app:54321#Secr3tPw@db.example:5432/flora_db", " names no host or no database"),
        ("postgresql://flora_app:pw@[db.example:5432/flora_db", " has an invalid host or port"),
    ],
)
def test_a_password_not_percent_encoded_is_named_without_quoting_the_url(url, problem):
    with pytest.raises(DatabaseError) as raised:
        connection_from_url(url)
    assert str(raised.value) == (
        f"DATABASE_URL{problem}; if its password has '/', '?', '#' or '@' in it, write them as %2F, %3F, %23 and %40"
    )


def test_the_applied_list_keeps_finished_migrations_and_names_the_failed_ones():
    applied = parse_applied("20250101000000_init|t|f\n20250201000000_broken|f|t\n20250301000000_price|f|f\n")
    assert applied == Applied(frozenset({"20250101000000_init"}), ("20250301000000_price",))
    assert '"shop"._prisma_migrations' in applied_query("shop")


def test_pending_migrations_are_the_commits_files_the_database_has_not_applied_in_order():
    files = migration_files(
        [
            "apps/backend/prisma/migrations/20250301000000_price/migration.sql",
            "apps/backend/prisma/migrations/20250101000000_init/migration.sql",
            "apps/backend/prisma/migrations/migration_lock.toml",
            "apps/backend/prisma/migrations/20250101000000_init/README.md",
            "apps/backend/prisma/other/20250401000000_x/migration.sql",
        ],
        "apps/backend/prisma/migrations/",
    )
    assert list(files) == ["20250101000000_init", "20250301000000_price"]
    assert pending_migrations(files, Applied(frozenset({"20250101000000_init"}), ())) == ["20250301000000_price"]
    assert pending_migrations(files, Applied(frozenset(), ())) == list(files)


def test_a_backup_is_named_after_its_release_and_found_by_release_or_key():
    key = backup_key("db-backups/", "flora_db", "a" * 40, "2026-12-07T03:15:00Z")
    assert key == f"db-backups/flora_db/{'a' * 40}-20261207T031500Z.dump"
    ledger = record_backup({"releases": []}, {"key": key, "release": "a" * 40})
    ledger = record_backup(ledger, {"key": "k2", "release": "b" * 40})
    assert find_backup(ledger)["key"] == "k2"
    assert find_backup(ledger, release="aaaaaaa")["key"] == key
    assert find_backup(ledger, key=key)["release"] == "a" * 40
    assert find_backup(ledger, release="c" * 7) is None


def test_a_restore_drops_the_tables_created_after_the_backup_then_runs_pg_restores_script():
    listing = (
        ";\n; Archive created at 2026-12-07 03:15:00 UTC\n;\n"
        "215; 1259 16385 TABLE public products flora_app\n"
        "216; 1259 16390 TABLE public _prisma_migrations flora_app\n"
        "217; 1259 16395 TABLE other products flora_app\n"
        "3350; 0 16385 TABLE DATA public products flora_app\n"
    )
    assert tables_in_listing(listing, "public") == {"products", "_prisma_migrations"}
    script = restore_script("SET x = 1;\n", "public", ["reviews", 'odd"name'])
    assert script == (
        'DROP TABLE IF EXISTS "public"."odd""name" CASCADE;\n'
        'DROP TABLE IF EXISTS "public"."reviews" CASCADE;\n'
        "SET x = 1;\n"
    )


def test_a_schema_name_is_quoted_as_an_identifier_and_as_a_literal():
    assert migrations_table_query("public") == "SELECT to_regclass('\"public\"._prisma_migrations') IS NOT NULL"
    assert migrations_table_query("it's") == "SELECT to_regclass('\"it''s\"._prisma_migrations') IS NOT NULL"
    assert tables_query("it's") == "SELECT tablename FROM pg_tables WHERE schemaname = 'it''s'"


def test_a_failed_restore_is_told_by_psqls_error_lines_without_the_rows_they_quote():
    stderr = (
        'psql:<stdin>:41: ERROR:  duplicate key value violates unique constraint "users_email_key"\n'
        "DETAIL:  Key (email)=(jane@customer.example) already exists.\n"
        'CONTEXT:  COPY users, line 2: "2\tjane@customer.example\tJane"\n'
    )
    assert error_lines(stderr) == (
        'psql:<stdin>:41: ERROR:  duplicate key value violates unique constraint "users_email_key"'
    )
    refused = 'psql: error: connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  password authentication'
    assert error_lines(refused + "\n") == refused
    assert error_lines("") == "psql gave no error message"
