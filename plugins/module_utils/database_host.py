# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the modules that reach the app's database from its host share (flora.deploy.pending_migrations,
db_backup, db_restore): the env file options, the connection, psql, and streaming pg_dump to S3 and back from it
into pg_restore. Takes the module for its options, commands and failures."""

from __future__ import annotations

import os
import subprocess
import tempfile
import typing as t

try:
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # caught by AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.database import (
    Connection,
    DatabaseError,
    connection_from_url,
    error_lines,
    restore_script,
    tables_in_listing,
    tables_query,
)
from ansible_collections.flora.deploy.plugins.module_utils.envfile import EnvFileError, parse_env_text

# Parts of a streamed dump in memory at once (8 MiB each): little beside the app on a 1 GiB host.
UPLOAD_CONCURRENCY = 4

DB_ENV_ARGUMENT_SPEC = {
    "env_file": {"type": "path", "required": True},
    "env_reader": {"type": "str", "choices": ["dotenv", "python-dotenv"], "default": "dotenv"},
    "url_variable": {"type": "str", "default": "DATABASE_URL"},
}


def database_connection(module: t.Any) -> Connection:
    """The database of the env file's URL; its password joins the module's no_log values."""
    params = module.params
    try:
        with open(params["env_file"], encoding="utf-8") as handle:
            values = parse_env_text(handle.read(), params["env_reader"])
        connection = connection_from_url(values.get(params["url_variable"], ""))
    except OSError as e:
        module.fail_json(msg=f"Cannot read the env file {params['env_file']}: {e.strerror}")
    except (EnvFileError, DatabaseError) as e:
        module.fail_json(msg=f"{params['url_variable']} in {params['env_file']}: {e}")
    module.no_log_values.update(connection.secrets)
    return connection


def client_tool(module: t.Any, name: str) -> str:
    executable = module.get_bin_path(name)
    if executable is None:
        module.fail_json(
            msg=f"{name} is not installed on the host: playbooks/bootstrap_ec2.yml installs it (postgresql-client)"
        )
    return executable


def psql(module: t.Any, connection: Connection, query: str, failure: str) -> str:
    """The query's rows, unaligned (``a|b``), without headers; fails the module with ``failure`` and psql's error."""
    rc, out, err = module.run_command(
        [client_tool(module, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", query],
        environ_update=connection.environment,
    )
    if rc != 0:
        module.fail_json(msg=f"{failure}: {err.strip()}")
    return out


def dump_to_s3(module: t.Any, connection: Connection, backup: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """pg_dump --format=custom piped into an upload of backup's bucket and key; the object's size and encryption.

    The partial object of a failed dump is deleted. Raises DatabaseError with pg_dump's message."""
    params = module.params
    extra = {
        "ServerSideEncryption": params["encryption"],
        "Metadata": {"release": backup["release"], "schema-of": backup["schema_of"], "database": backup["database"]},
    }
    if params["encryption_kms_key_id"]:
        extra["SSEKMSKeyId"] = params["encryption_kms_key_id"]
    command = [client_tool(module, "pg_dump"), "--format=custom", "--no-owner", "--no-privileges"]
    client = module.client("s3")
    bucket, key = backup["bucket"], backup["key"]
    with tempfile.TemporaryFile() as errors:
        dump = subprocess.Popen(  # pylint: disable=consider-using-with
            command, stdout=subprocess.PIPE, stderr=errors, env=dict(os.environ, **connection.environment)
        )
        try:
            client.upload_fileobj(
                dump.stdout, bucket, key, ExtraArgs=extra, Config=TransferConfig(max_concurrency=UPLOAD_CONCURRENCY)
            )
        except (BotoCoreError, ClientError) as e:
            dump.kill()
            dump.wait()
            module.fail_json_aws(e, msg=f"Failed to write the backup to s3://{bucket}/{key}: nothing was migrated")
        finally:
            dump.stdout.close()
        rc = dump.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if rc != 0:
        try:
            client.delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError):
            pass
        raise DatabaseError(f"pg_dump of {connection.database} failed (exit {rc}), nothing was migrated: {message}")
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Cannot read back the backup s3://{bucket}/{key}")
    return {"size": head["ContentLength"], "encryption": head.get("ServerSideEncryption", "")}


def restore_from_s3(module: t.Any, connection: Connection, backup: t.Mapping[str, t.Any]) -> list[str]:
    """The backup put back in one transaction: what it holds dropped and recreated, the tables created after it
    dropped. A failure leaves the database as it was. Returns the tables dropped."""
    bucket, key = backup["bucket"], backup["key"]
    pg_restore, psql_bin = client_tool(module, "pg_restore"), client_tool(module, "psql")
    with tempfile.NamedTemporaryFile(prefix="flora-restore-", suffix=".dump") as dump:
        try:
            module.client("s3").download_fileobj(bucket, key, dump)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Cannot read the backup s3://{bucket}/{key}: nothing was restored")
        dump.flush()
        rc, listing, err = module.run_command([pg_restore, "--list", dump.name])
        if rc != 0:
            raise DatabaseError(f"s3://{bucket}/{key} is not a pg_dump backup: {err.strip()}")
        rc, script, err = module.run_command(
            [pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--file=-", dump.name]
        )
        if rc != 0:
            raise DatabaseError(f"pg_restore cannot read s3://{bucket}/{key}: {err.strip()}")
    current = psql(
        module,
        connection,
        tables_query(connection.schema),
        f"Cannot list the tables of {connection.database}",
    ).split()
    extra = sorted(set(current) - tables_in_listing(listing, connection.schema))
    rc, _out, err = module.run_command(
        [psql_bin, "-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        data=restore_script(script, connection.schema, extra),
        environ_update=connection.environment,
        binary_data=True,
    )
    if rc != 0:
        raise DatabaseError(
            f"Restoring s3://{bucket}/{key} into {connection.database} failed, nothing was changed: {error_lines(err)}"
        )
    return extra
