"""The redeploy's guard against destructive migrations and its backup before a schema change, on the test host.

Each test puts main live, pushes a branch of its own with a migration, and reads what happened from the task
results, the host's link and ledger, the database and the backup bucket.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.hosts.test_redeploy import ROOT, host_exec, ledger, live_commit, new_branch, psql, put_live, redeploy
from tests.support import localaws, stack
from tests.support.stack import playbook_run

MIGRATIONS = "apps/backend/prisma/migrations"


@pytest.fixture(scope="module")
def host(bootstrapped_host):
    return bootstrapped_host


def migration(name: str, sql: str) -> dict[str, str]:
    return {f"{MIGRATIONS}/{name}/migration.sql": sql}


def backups(endpoint: str) -> list[dict]:
    s3 = localaws.boto3_client("s3", endpoint)
    return s3.list_objects_v2(Bucket=stack.BACKUP_BUCKET).get("Contents", [])


def applied(port: int, name: str) -> str:
    return psql(f"SELECT count(*) FROM _prisma_migrations WHERE migration_name = '{name}'", port)


def release_dirs() -> list[str]:
    return host_exec("ls", f"{ROOT}/releases").split()


# (rule, migration SQL, the statement the message names)
DESTRUCTIVE = [
    ("ban-drop-table", "DROP TABLE products;\n", "DROP TABLE products"),
    ("ban-drop-column", "ALTER TABLE products DROP COLUMN stock;\n", "ALTER TABLE products DROP COLUMN stock"),
    (
        "changing-column-type",
        "ALTER TABLE products ALTER COLUMN stock TYPE bigint;\n",
        "ALTER TABLE products ALTER COLUMN stock TYPE bigint",
    ),
    ("truncate-table", "TRUNCATE products;\n", "TRUNCATE products"),
    ("delete-without-where", "DELETE FROM products;\n", "DELETE FROM products"),
    ("update-without-where", "UPDATE products SET stock = 0;\n", "UPDATE products SET stock = 0"),
    (
        "require-concurrent-index-creation",
        "CREATE INDEX products_stock ON products (stock);\n",
        "CREATE INDEX products_stock ON products (stock)",
    ),
]


@pytest.mark.parametrize(("rule", "sql", "statement"), DESTRUCTIVE, ids=[case[0] for case in DESTRUCTIVE])
def test_a_destructive_migration_stops_the_redeploy_before_anything_changes(host, rule, sql, statement):
    main = put_live(host, "main")
    name = f"20260101000000_{rule.replace('-', '_')}"
    branch, commit = new_branch(host, "main", migration(name, "-- A change\n" + sql), f"Migration {rule}")
    port = host["pg_port"]
    rows = psql("SELECT name, stock FROM products ORDER BY name", port)
    dirs, objects, recorded = release_dirs(), backups(host["endpoint"]), ledger()

    run = redeploy(host, branch)

    assert run.rc != 0
    assert run.result("List the migrations the database has not applied")["pending_names"] == [name]
    lint = run.result("Check the pending migrations for statements that destroy data or lock tables")
    assert lint["failed"] and [(f["migration"], f["rule"], f["line"]) for f in lint["findings"]] == [(name, rule, 2)]
    failure = run.failure()
    assert failure.startswith(f"Redeploy of {branch} ({commit[:12]}) stopped before anything changed")
    assert f"{MIGRATIONS}/{name}/migration.sql" in failure and statement in failure and rule in failure
    assert failure.endswith(f"{main[:12]} is still serving.")
    # Nothing changed: no backup, no unpacked release, no migration, the same rows, the same live release and
    # ledger, and the lock released.
    assert not run.ran("Back up the database to S3 before its schema changes")
    assert not run.ran("Apply database migrations")
    assert backups(host["endpoint"]) == objects and release_dirs() == dirs
    assert applied(port, name) == "0" and psql("SELECT name, stock FROM products ORDER BY name", port) == rows
    assert live_commit() == main and ledger() == recorded
    assert host_exec("sh", "-c", f"ls -d {ROOT}/.deploy.lock 2>/dev/null || true") == ""


def test_an_allowed_destructive_migration_runs_after_an_encrypted_backup_recorded_in_the_ledger(host):
    main = put_live(host, "main")
    port = host["pg_port"]
    table = f"scratch_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE TABLE {table} (id integer PRIMARY KEY, note text); INSERT INTO {table} VALUES (1, 'kept')", port)
    name = f"20260102000000_drop_{table}"
    branch, commit = new_branch(host, "main", migration(name, f"ALTER TABLE {table} DROP COLUMN note;\n"), "Drop")

    # Refused without the allowance, then allowed for this migration alone.
    assert redeploy(host, branch).rc != 0
    run = redeploy(host, branch, "-e", f'{{"backend_redeploy_allowed_migrations": ["{name}"]}}')

    assert run.rc == 0, run
    lint = run.result("Check the pending migrations for statements that destroy data or lock tables")
    assert lint["findings"] == [] and [(f["migration"], f["rule"]) for f in lint["allowed"]] == [
        (name, "ban-drop-column")
    ]
    names = run.names()
    backup_task = names.index("flora.deploy.backend_redeploy : Back up the database to S3 before its schema changes")
    assert backup_task < names.index("flora.deploy.backend_release : Apply database migrations")
    backup = run.result("Back up the database to S3 before its schema changes")["backup"]
    assert backup["release"] == commit and backup["schema_of"] == main and backup["migrations"] == [name]
    assert backup["key"].startswith(f"db-backups/flora_db/{commit}-") and backup["encryption"] == "AES256"
    head = localaws.boto3_client("s3", host["endpoint"]).head_object(Bucket=stack.BACKUP_BUCKET, Key=backup["key"])
    assert head["ServerSideEncryption"] == "AES256" and head["ContentLength"] == backup["size"] > 0
    assert ledger()["backups"][-1] == backup
    # The migration ran after it: the column is gone, the row kept.
    assert applied(port, name) == "1" and live_commit() == commit
    assert psql(f"SELECT * FROM {table}", port) == "1"


def test_check_mode_reports_the_migrations_that_would_run_and_the_backup(host):
    main = put_live(host, "main")
    name = f"20260103000000_add_{uuid.uuid4().hex[:8]}"
    branch, commit = new_branch(
        host, "main", migration(name, "ALTER TABLE products ADD COLUMN IF NOT EXISTS gift_note text;\n"), "Add"
    )
    # A new commit: the check fetches it into the host's repository cache to read its migrations.
    in_cache = f"git -C {ROOT}/repo.git cat-file -e {commit} 2>/dev/null && echo yes || echo no"
    assert host_exec("su", "ubuntu", "-c", in_cache) == "no"
    objects, recorded = backups(host["endpoint"]), ledger()

    run = redeploy(host, branch, "--check")

    assert run.rc == 0, run
    assert run.result("List the migrations the database has not applied")["pending_names"] == [name]
    assert (
        run.result("Say which migrations run, after which backup")["msg"]
        == f"Would apply {name} after a backup (pg_dump)"
    )
    assert not run.ran("Back up the database to S3 before its schema changes")
    assert backups(host["endpoint"]) == objects and ledger() == recorded and live_commit() == main
    assert applied(host["pg_port"], name) == "0" and host_exec("su", "ubuntu", "-c", in_cache) == "yes"


def test_a_migration_the_database_applied_already_takes_no_backup_and_no_migration_step(host):
    put_live(host, "main")
    port = host["pg_port"]
    name = f"20260104000000_add_{uuid.uuid4().hex[:8]}"
    column = f"c_{uuid.uuid4().hex[:8]}"
    branch, commit = new_branch(
        host, "main", migration(name, f"ALTER TABLE products ADD COLUMN {column} text;\n"), "Add a column"
    )
    # As if applied by hand, or by a run that died after migrating.
    psql(f"ALTER TABLE products ADD COLUMN {column} text", port)
    psql(
        "INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, applied_steps_count) "
        f"VALUES ('{uuid.uuid4()}', 'x', '{name}', now(), 1)",
        port,
    )
    objects = backups(host["endpoint"])

    run = redeploy(host, branch)

    assert run.rc == 0, run
    assert run.result("List the migrations the database has not applied")["pending_names"] == []
    assert run.result("Say which migrations run, after which backup")["msg"] == (
        f"No migration pending: the database has applied every migration of {commit[:12]}; no backup, no migration step"
    )
    assert not run.ran("Back up the database to S3 before its schema changes")
    assert not run.ran("Apply database migrations")
    assert backups(host["endpoint"]) == objects and live_commit() == commit


def test_the_restore_drill_brings_back_the_dropped_column_and_the_rows_with_the_code_that_matches(host):
    main = put_live(host, "main")
    port = host["pg_port"]
    table = f"drill_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE TABLE {table} (id integer PRIMARY KEY, note text); INSERT INTO {table} VALUES (1, 'before')", port)
    name = f"20260105000000_drop_{table}"
    branch, commit = new_branch(host, "main", migration(name, f"ALTER TABLE {table} DROP COLUMN note;\n"), "Drop")
    deployed = redeploy(host, branch, "-e", "backend_redeploy_allow_destructive_migrations=true")
    assert deployed.rc == 0, deployed
    backup = deployed.result("Back up the database to S3 before its schema changes")["backup"]
    psql(f"INSERT INTO {table} VALUES (2)", port)

    refused = playbook_run(host, "restore_database.yml", "-e", f"database_restore_release={commit[:12]}")
    assert refused.rc != 0 and "Confirm with the database's name (flora_db); nothing was changed." in refused.failure()
    assert psql(f"SELECT * FROM {table} ORDER BY id", port) == "1\n2" and live_commit() == commit

    restore = (
        "restore_database.yml",
        "-e",
        f"database_restore_release={commit[:12]}",
        "-e",
        "database_restore_confirm=flora_db",
    )
    check = playbook_run(host, *restore, "--check")
    assert check.rc == 0, check
    assert check.result("Say what the restore does")["msg"] == (
        f"Would restore {backup['key']} (taken {backup['taken_at']} before {name}) and switch to {main[:12]}"
    )
    assert not check.ran("Stop the app's workers so that nothing writes during the restore")
    assert psql(f"SELECT * FROM {table} ORDER BY id", port) == "1\n2" and live_commit() == commit

    run = playbook_run(host, *restore)

    assert run.rc == 0, run
    names = [name.rsplit(" : ", 1)[-1] for name in run.names()]
    # The workers stop before the restore, and the release that matches the schema is switched to after it.
    assert run.result("Stop the app's workers so that nothing writes during the restore")["changed"]
    assert names.index("Stop the app's workers so that nothing writes during the restore") < names.index(
        "Restore the database from the backup"
    )
    assert run.result("Restore the database from the backup")["backup"] == backup
    # The column and the rows written before the backup are back; the row written after it is not.
    assert psql(f"SELECT id, note FROM {table} ORDER BY id", port) == "1|before"
    assert applied(port, name) == "0"
    # The code matches the schema: the release live before the migration serves again, recorded in the ledger.
    assert live_commit() == main and ledger()["current"] == main
    assert json.loads(host_exec("curl", "-sf", "http://127.0.0.1:3001/api/health"))["status"] == "healthy"


def test_on_rds_the_backup_is_a_snapshot_recorded_in_the_ledger_and_restored_with_rds(host):
    main = put_live(host, "main")
    rds = localaws.boto3_client("rds", host["endpoint"])
    instance = f"flora-db-{uuid.uuid4().hex[:8]}"
    localaws.create_database_instance(host["endpoint"], instance)
    name = f"20260106000000_add_{uuid.uuid4().hex[:8]}"
    column = f"c_{uuid.uuid4().hex[:8]}"
    branch, commit = new_branch(
        host, "main", migration(name, f"ALTER TABLE products ADD COLUMN {column} text;\n"), "Add"
    )
    objects = backups(host["endpoint"])

    # The deployer takes the snapshot, with the policy for it.
    with stack.allowing(host, backup="rds_snapshot", backup_rds_instance=instance):
        run = redeploy(
            host,
            branch,
            "-e",
            "backend_redeploy_backup=rds_snapshot",
            "-e",
            f"backend_redeploy_backup_rds_instance={instance}",
        )

    assert run.rc == 0, run
    assert not run.ran("Back up the database to S3 before its schema changes")
    snapshot = run.result("Snapshot the RDS instance before its schema changes")["db_snapshot_identifier"]
    described = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"][0]
    assert described["DBInstanceIdentifier"] == instance
    tags = {
        tag["Key"]: tag["Value"]
        for tag in rds.list_tags_for_resource(ResourceName=described["DBSnapshotArn"])["TagList"]
    }
    assert tags == {"flora-release": commit, "flora-schema-of": main}
    recorded = ledger()["backups"][-1]
    assert (recorded["snapshot"], recorded["release"], recorded["schema_of"], recorded["migrations"]) == (
        snapshot,
        commit,
        main,
        [name],
    )
    assert backups(host["endpoint"]) == objects and applied(host["pg_port"], name) == "1"

    restore = playbook_run(
        host,
        "restore_database.yml",
        "-e",
        f"database_restore_release={commit}",
        "-e",
        "database_restore_confirm=flora_db",
    )
    assert restore.rc != 0
    assert restore.failure() == (
        f"The backup for {commit[:12]} is the RDS snapshot {snapshot}: restore it with RDS (a new instance from the "
        "snapshot), then point DATABASE_URL at it"
    )
    assert live_commit() == commit
