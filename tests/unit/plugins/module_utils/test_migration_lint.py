"""migration_lint with the real squawk binary (squawk-cli) and PostgreSQL's parser (pglast)."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.flora.deploy.plugins.module_utils import migration_lint
from ansible_collections.flora.deploy.plugins.module_utils.migration_lint import (
    DEFAULT_EXCLUDED_RULES,
    Migration,
    MigrationLintError,
    display_statement,
    find_squawk,
    lint_migrations,
    refusal_message,
)

MIGRATIONS = "apps/backend/prisma/migrations"

# What `prisma migrate dev` writes for a new model with a relation to an existing one and a new field on it.
PRISMA_NEW_TABLE = """-- AlterTable
ALTER TABLE "Product" ADD COLUMN     "featured" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "Review" (
    "id" SERIAL NOT NULL,
    "productId" INTEGER NOT NULL,
    "rating" SMALLINT NOT NULL,
    "sku" VARCHAR(64) NOT NULL,
    "country" CHAR(2),
    "body" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Review_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Review_sku_key" ON "Review"("sku");

-- AddForeignKey
ALTER TABLE "Review" ADD CONSTRAINT "Review_productId_fkey" FOREIGN KEY ("productId") REFERENCES "Product"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
"""


def migration(name: str, sql: str) -> Migration:
    return Migration(name=name, path=f"{MIGRATIONS}/{name}/migration.sql", sql=sql)


def prisma_migration(name: str, statement: str) -> Migration:
    """A migration whose statement of interest is on line 5, after a harmless one, as Prisma lays them out."""
    sql = f'-- AlterTable\nALTER TABLE "Product" ADD COLUMN "note" TEXT;\n\n-- {name}\n{statement}\n'
    return migration(f"20250301000000_{name}", sql)


def summary(findings) -> list[tuple[str, int, str, str]]:
    return [(f.migration, f.line, f.rule, f.statement) for f in findings]


@pytest.fixture
def squawk_runs(monkeypatch):
    """The names of the migrations each squawk run was given; each run still runs squawk."""
    runs = []
    real_run_squawk = migration_lint.run_squawk

    def run_squawk(squawk, migrations, **options):
        runs.append([m.name for m in migrations])
        return real_run_squawk(squawk, migrations, **options)

    monkeypatch.setattr(migration_lint, "run_squawk", run_squawk)
    return runs


# ---------------------------------------------------------------------------
# What is refused


@pytest.mark.parametrize(
    ("name", "statement", "rules", "linter"),
    [
        ("drop_table", 'DROP TABLE "Stock";', {"ban-drop-table"}, "squawk"),
        ("drop_column", 'ALTER TABLE "Product" DROP COLUMN "stock";', {"ban-drop-column"}, "squawk"),
        (
            "column_type",
            'ALTER TABLE "Product" ALTER COLUMN "price" SET DATA TYPE DECIMAL(10,2);',
            {"changing-column-type"},
            "squawk",
        ),
        ("truncate", 'TRUNCATE TABLE "CartItem";', {"truncate-table"}, "flora.deploy"),
        ("delete_all", 'DELETE FROM "CartItem";', {"delete-without-where"}, "flora.deploy"),
        ("update_all", 'UPDATE "Product" SET "featured" = false;', {"update-without-where"}, "flora.deploy"),
        (
            "index",
            'CREATE INDEX "Product_name_idx" ON "Product"("name");',
            {"require-concurrent-index-creation"},
            "squawk",
        ),
        (
            "check_constraint",
            'ALTER TABLE "Product" ADD CONSTRAINT "Product_price_check" CHECK ("price" >= 0);',
            {"constraint-missing-not-valid"},
            "squawk",
        ),
        (
            "foreign_key",
            'ALTER TABLE "Order" ADD CONSTRAINT "Order_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id");',
            {"constraint-missing-not-valid", "adding-foreign-key-constraint"},
            "squawk",
        ),
        (
            "set_not_null",
            'ALTER TABLE "Product" ALTER COLUMN "sku" SET NOT NULL;',
            {"adding-not-nullable-field"},
            "squawk",
        ),
        ("rename_column", 'ALTER TABLE "Product" RENAME COLUMN "name" TO "title";', {"renaming-column"}, "squawk"),
    ],
)
def test_each_destructive_or_locking_statement_is_refused_naming_its_statement_and_line(name, statement, rules, linter):
    pending = prisma_migration(name, statement)

    report = lint_migrations([pending])

    assert report.checked == 1
    assert report.allowed == []
    assert {f.rule for f in report.refused} == rules
    for finding in report.refused:
        assert finding.migration == pending.name
        assert finding.path == f"{MIGRATIONS}/{pending.name}/migration.sql"
        assert finding.line == 5
        assert finding.statement == statement.rstrip(";")
        assert finding.linter == linter
        assert finding.message


def test_the_collections_own_rules_say_every_row_is_affected():
    report = lint_migrations(
        [
            migration(
                "20250301000000_reset", 'TRUNCATE "Cart";\nDELETE FROM "CartItem";\nUPDATE "Product" SET "x" = 1;\n'
            )
        ]
    )

    messages = {f.rule: f.message for f in report.refused}
    assert messages == {
        "truncate-table": "TRUNCATE removes every row of the table, under an ACCESS EXCLUSIVE lock.",
        "delete-without-where": "DELETE without a WHERE that depends on the row removes every row of the table.",
        "update-without-where": "UPDATE without a WHERE that depends on the row rewrites every row of the table "
        "and blocks writes to each until the migration commits.",
    }


def test_a_delete_inside_a_with_is_found():
    report = lint_migrations(
        [
            migration(
                "20250301000000_archive",
                'WITH gone AS (DELETE FROM "CartItem" RETURNING *)\nSELECT count(*) FROM gone;\n',
            )
        ]
    )

    assert summary(report.refused) == [
        (
            "20250301000000_archive",
            1,
            "delete-without-where",
            'WITH gone AS (DELETE FROM "CartItem" RETURNING *) SELECT count(*) FROM gone',
        )
    ]


@pytest.mark.parametrize(
    "statement",
    [
        'DELETE FROM "CartItem" WHERE true;',
        'UPDATE "Product" SET "price" = 0 WHERE 1 = 1;',
        "DELETE FROM \"CartItem\" WHERE 'x' = 'x' AND NOT false;",
        'DELETE FROM "CartItem" WHERE EXISTS (SELECT 1 FROM "Order");',
    ],
)
def test_a_where_that_names_no_column_counts_as_none(statement):
    report = lint_migrations([prisma_migration("everything", statement)])

    assert [(f.line, f.rule) for f in report.refused] == [
        (5, "update-without-where" if statement.startswith("UPDATE") else "delete-without-where")
    ]


def test_dropping_not_null_keeps_every_row_and_passes_by_default():
    dropped = prisma_migration("optional", 'ALTER TABLE "Product" ALTER COLUMN "note" DROP NOT NULL;')

    assert lint_migrations([dropped]).refused == []
    assert [f.rule for f in lint_migrations([dropped], excluded_rules=[]).refused if f.line == 5] == [
        "ban-drop-not-null"
    ]


def test_delete_and_update_with_where_pass():
    sql = (
        '-- Backfill\nUPDATE "Product" SET "featured" = true WHERE "id" IN (1, 2, 3);\n'
        'DELETE FROM "CartItem" WHERE "createdAt" < now() - interval \'90 days\';\n'
    )

    report = lint_migrations([migration("20250301000000_backfill", sql)])

    assert (report.checked, report.refused, report.allowed) == (1, [], [])


def test_a_prisma_migration_adding_a_table_with_an_index_and_a_foreign_key_passes():
    report = lint_migrations([migration("20250301000000_reviews", PRISMA_NEW_TABLE)])

    assert (report.checked, report.refused, report.allowed) == (1, [], [])


def test_without_the_default_exclusions_the_prisma_migration_trips_the_style_rules():
    report = lint_migrations([migration("20250301000000_reviews", PRISMA_NEW_TABLE)], excluded_rules=[])

    rules = {f.rule for f in report.refused}
    assert {"prefer-bigint-over-int", "prefer-identity", "prefer-timestamp-tz", "prefer-text-field"} <= rules
    assert rules <= set(DEFAULT_EXCLUDED_RULES)


def test_outside_a_transaction_the_index_and_foreign_key_on_the_new_table_are_reported():
    report = lint_migrations([migration("20250301000000_reviews", PRISMA_NEW_TABLE)], assume_in_transaction=False)

    assert ("require-concurrent-index-creation", 19) in {(f.rule, f.line) for f in report.refused}
    assert ("adding-foreign-key-constraint", 22) in {(f.rule, f.line) for f in report.refused}


def test_a_concurrent_index_is_refused_only_among_other_statements():
    alone = migration("20250301000000_index", 'CREATE INDEX CONCURRENTLY "Product_name_idx" ON "Product"("name");\n')
    among = migration(
        "20250302000000_index",
        'ALTER TABLE "Product" ADD COLUMN "note" TEXT;\n'
        'CREATE INDEX CONCURRENTLY "Product_note_idx" ON "Product"("note");\n',
    )

    report = lint_migrations([alone, among])

    assert [(f.migration, f.line, f.rule) for f in report.refused] == [
        ("20250302000000_index", 2, "ban-concurrent-index-creation-in-transaction")
    ]


def test_a_finding_inside_a_long_statement_names_its_own_line_and_the_whole_statement():
    sql = '-- AlterTable\nALTER TABLE "Product"\n    ADD COLUMN "note" TEXT,\n    ALTER COLUMN "sku" SET NOT NULL;\n'

    report = lint_migrations([migration("20250301000000_sku", sql)])

    assert summary(report.refused) == [
        (
            "20250301000000_sku",
            4,
            "adding-not-nullable-field",
            'ALTER TABLE "Product" ADD COLUMN "note" TEXT, ALTER COLUMN "sku" SET NOT NULL',
        )
    ]


def test_squawk_columns_count_bytes_so_a_statement_after_non_ascii_text_is_still_found():
    # squawk's column counts UTF-8 bytes: read as characters it would point past the statement into the next one.
    sql = 'ALTER TABLE "花屋の在庫一覧表と価格" DROP COLUMN "x"; SELECT 1;\n'

    report = lint_migrations([migration("20250301000000_non_ascii", sql)])

    assert summary(report.refused) == [
        (
            "20250301000000_non_ascii",
            1,
            "ban-drop-column",
            'ALTER TABLE "花屋の在庫一覧表と価格" DROP COLUMN "x"',
        )
    ]


def test_several_migrations_are_checked_in_one_squawk_run_and_each_finding_names_its_own(squawk_runs):
    pending = [
        migration("20250101000000_reviews", PRISMA_NEW_TABLE),
        migration("20250301000000_drop_stock", '-- DropTable\nDROP TABLE "Stock";\n'),
        migration(
            "20250302000000_cart",
            '-- Clear\n\nDELETE FROM "CartItem";\n\n-- AlterTable\nALTER TABLE "Cart" DROP COLUMN "coupon";\n',
        ),
        migration("20250303000000_[odd] name*", 'ALTER TABLE "Product" RENAME COLUMN "name" TO "title";'),
    ]

    report = lint_migrations(pending)

    assert report.checked == 4
    assert summary(report.refused) == [
        ("20250301000000_drop_stock", 2, "ban-drop-table", 'DROP TABLE "Stock"'),
        ("20250302000000_cart", 3, "delete-without-where", 'DELETE FROM "CartItem"'),
        ("20250302000000_cart", 6, "ban-drop-column", 'ALTER TABLE "Cart" DROP COLUMN "coupon"'),
        ("20250303000000_[odd] name*", 1, "renaming-column", 'ALTER TABLE "Product" RENAME COLUMN "name" TO "title"'),
    ]
    assert report.refused[2].path == f"{MIGRATIONS}/20250302000000_cart/migration.sql"
    assert squawk_runs == [[m.name for m in pending]]


def test_no_migrations_check_nothing_and_run_nothing(squawk_runs):
    report = lint_migrations([])

    assert (report.checked, report.refused, report.allowed) == (0, [], [])
    assert squawk_runs == []


def test_empty_and_comment_only_migrations_pass():
    report = lint_migrations([migration("20250301000000_empty", ""), migration("20250302000000_note", "-- nothing\n")])

    assert (report.checked, report.refused, report.allowed) == (2, [], [])


# ---------------------------------------------------------------------------
# Migrations PostgreSQL cannot parse


def test_a_syntax_error_is_a_finding_and_the_other_migrations_are_still_checked():
    broken = migration(
        "20250301000000_typo",
        '-- AlterTable\nALTER TABLE "Product" ADD COLUMN "note" TEXT;\n\nALTER TABLE "Product" DROPP COLUMN "stock";\n',
    )
    dropping = migration("20250302000000_drop_stock", 'DROP TABLE "Stock";\n')

    report = lint_migrations([broken, dropping])

    assert summary(report.refused) == [
        ("20250301000000_typo", 4, "syntax-error", 'ALTER TABLE "Product" DROPP COLUMN "stock"'),
        ("20250302000000_drop_stock", 1, "ban-drop-table", 'DROP TABLE "Stock"'),
    ]
    assert report.refused[0].message == (
        'PostgreSQL cannot parse the migration (syntax error at or near "DROPP"), so it was not checked.'
    )
    assert report.refused[0].linter == "flora.deploy"


def test_an_unterminated_string_is_a_syntax_error_on_its_line():
    report = lint_migrations([migration("20250301000000_quote", 'SELECT 1;\nUPDATE "Product" SET "note" = \'oops;\n')])

    assert [(f.line, f.rule) for f in report.refused] == [(2, "syntax-error")]
    assert "unterminated quoted string" in report.refused[0].message


def test_syntax_errors_cannot_be_excluded():
    with pytest.raises(MigrationLintError, match="syntax-error rule cannot be excluded"):
        lint_migrations([migration("20250301000000_x", "SELECT 1;")], excluded_rules=["syntax-error"])


# ---------------------------------------------------------------------------
# Allowing and excluding


def test_allow_destructive_moves_every_finding_to_allowed():
    pending = [
        migration("20250301000000_drop_stock", 'DROP TABLE "Stock";\n'),
        migration("20250302000000_typo", "DROPP TABLE x;\n"),
    ]

    report = lint_migrations(pending, allow_destructive=True)

    assert report.refused == []
    assert [(f.migration, f.rule) for f in report.allowed] == [
        ("20250301000000_drop_stock", "ban-drop-table"),
        ("20250302000000_typo", "syntax-error"),
    ]
    assert report.to_result() == {
        "checked": 2,
        "findings": [],
        "allowed": [finding.to_dict() for finding in report.allowed],
    }


def test_allowed_migrations_allow_only_their_own_findings():
    pending = [
        migration("20250301000000_drop_stock", 'DROP TABLE "Stock";\n'),
        migration("20250302000000_clear_carts", 'DELETE FROM "CartItem";\n'),
    ]

    report = lint_migrations(pending, allowed_migrations=["20250301000000_drop_stock", "20240101000000_long_applied"])

    assert [(f.migration, f.rule) for f in report.allowed] == [("20250301000000_drop_stock", "ban-drop-table")]
    assert [(f.migration, f.rule) for f in report.refused] == [("20250302000000_clear_carts", "delete-without-where")]
    assert report.to_result()["findings"] == [
        {
            "migration": "20250302000000_clear_carts",
            "path": f"{MIGRATIONS}/20250302000000_clear_carts/migration.sql",
            "line": 1,
            "statement": 'DELETE FROM "CartItem"',
            "rule": "delete-without-where",
            "message": "DELETE without a WHERE that depends on the row removes every row of the table.",
            "linter": "flora.deploy",
        }
    ]


def test_excluded_rules_of_squawk_and_of_the_collection_are_not_reported():
    sql = 'DROP TABLE "Stock";\nTRUNCATE "Cart";\nDELETE FROM "CartItem";\nALTER TABLE "Product" DROP COLUMN "x";\n'
    pending = [migration("20250301000000_cleanup", sql)]

    report = lint_migrations(
        pending, excluded_rules=[*DEFAULT_EXCLUDED_RULES, "ban-drop-table", "truncate-table", "delete-without-where"]
    )

    assert [(f.line, f.rule) for f in report.refused] == [(4, "ban-drop-column")]
    assert report.allowed == []


def test_included_rules_report_squawks_opt_in_rules():
    pending = [migration("20250301000000_note", 'ALTER TABLE "Product" ADD COLUMN "note" TEXT;\n')]

    assert lint_migrations(pending).refused == []
    report = lint_migrations(pending, included_rules=["ban-add-column"])
    assert [(f.line, f.rule, f.linter) for f in report.refused] == [(1, "ban-add-column", "squawk")]


def test_an_included_rule_is_checked_though_the_default_list_excludes_it():
    dropped = prisma_migration("optional", 'ALTER TABLE "Product" ALTER COLUMN "note" DROP NOT NULL;')

    report = lint_migrations([dropped], included_rules=["ban-drop-not-null"])

    assert [(f.line, f.rule) for f in report.refused] == [(5, "ban-drop-not-null")]


def test_the_postgresql_version_reaches_squawk():
    pending = [migration("20250301000000_flag", 'ALTER TABLE "Product" ADD COLUMN "flag" BOOLEAN DEFAULT false;\n')]

    assert lint_migrations(pending).refused == []
    report = lint_migrations(pending, pg_version="10")
    assert [f.rule for f in report.refused] == ["adding-field-with-default"]


def test_the_default_exclusions_are_squawk_rules():
    # squawk refuses a rule name it does not know: a renamed rule would fail every check.
    report = lint_migrations([migration("20250301000000_x", "SELECT 1;")], excluded_rules=DEFAULT_EXCLUDED_RULES)

    assert report.refused == []


# ---------------------------------------------------------------------------
# The failure message


def test_the_refusal_message_names_file_line_statement_rule_and_how_to_allow():
    report = lint_migrations(
        [
            migration("20250301000000_drop_stock", '-- DropTable\nDROP TABLE "Stock";\n'),
            migration("20250302000000_clear_carts", 'DELETE FROM "CartItem";\n'),
        ]
    )
    hint = "Set backend_redeploy_allow_destructive_migrations=true, or list it in backend_redeploy_allowed_migrations."

    message = refusal_message(report.refused, hint)

    drop = f"{MIGRATIONS}/20250301000000_drop_stock/migration.sql:2"
    delete = f"{MIGRATIONS}/20250302000000_clear_carts/migration.sql:1"
    assert message.splitlines() == [
        "2 finding(s) in the pending migrations were refused:",
        f'{drop}: DROP TABLE "Stock" [ban-drop-table] Dropping a table may break existing clients.',
        f'{delete}: DELETE FROM "CartItem" [delete-without-where] DELETE without a WHERE that depends on the row removes every row of the table.',
        hint,
    ]


def test_the_default_hint_names_the_module_options():
    message = refusal_message([])

    assert "allow_destructive=true" in message
    assert "allowed_migrations" in message


def test_a_statement_is_shown_on_one_line_and_shortened():
    columns = ",\n".join(f'    "column{i}" TEXT' for i in range(40))

    shown = display_statement(f'CREATE TABLE "Wide" (\n{columns}\n)')

    assert "\n" not in shown
    assert len(shown) == 200
    assert shown.startswith('CREATE TABLE "Wide" ( "column0" TEXT, "column1" TEXT,')
    assert shown.endswith("...")
    assert display_statement('DROP   TABLE\n  "Stock"') == 'DROP TABLE "Stock"'


# ---------------------------------------------------------------------------
# Finding and running squawk


def test_squawk_is_found_beside_the_running_python_when_it_is_not_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    found = find_squawk()

    assert found == os.path.join(os.path.dirname(sys.executable), "squawk")
    assert lint_migrations([migration("20250301000000_drop_stock", 'DROP TABLE "Stock";')]).refused


def test_a_missing_squawk_says_which_package_to_install_on_the_controller(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(migration_lint.sys, "executable", str(tmp_path / "venv" / "bin" / "python"))

    with pytest.raises(MigrationLintError) as raised:
        lint_migrations([migration("20250301000000_drop_stock", 'DROP TABLE "Stock";')])

    message = str(raised.value)
    assert "squawk-cli Python package" in message
    assert "installed on the controller" in message
    assert "collection's requirements" in message


def test_an_explicit_squawk_path_overrides_the_search(tmp_path):
    with pytest.raises(MigrationLintError, match="does not exist or is not executable"):
        lint_migrations([migration("20250301000000_x", "SELECT 1;")], squawk=str(tmp_path / "squawk"))

    assert lint_migrations([migration("20250301000000_x", 'DROP TABLE "Stock";')], squawk=find_squawk()).refused


def test_a_squawk_failure_is_an_error_with_its_output():
    with pytest.raises(MigrationLintError, match=r"failed \(exit code 2\).*invalid rule name no-such-rule"):
        lint_migrations([migration("20250301000000_x", "SELECT 1;")], excluded_rules=["no-such-rule"])


def test_a_squawk_that_crashes_is_an_error(tmp_path):
    broken = tmp_path / "squawk"
    broken.write_text("#!/bin/sh\necho 'thread main panicked' >&2\nexit 101\n")
    broken.chmod(0o755)

    with pytest.raises(MigrationLintError, match=r"failed \(exit code 101\): thread main panicked"):
        lint_migrations([migration("20250301000000_x", "SELECT 1;")], squawk=str(broken))


def test_a_squawk_that_exits_1_without_a_report_is_an_error(tmp_path):
    # squawk exits 1 for its findings too: only a JSON report makes it a success.
    broken = tmp_path / "squawk"
    broken.write_text("#!/bin/sh\necho 'Failed to find files for provided patterns' >&2\nexit 1\n")
    broken.chmod(0o755)

    with pytest.raises(MigrationLintError, match=r"failed \(exit code 1\): Failed to find files"):
        lint_migrations([migration("20250301000000_x", "SELECT 1;")], squawk=str(broken))
