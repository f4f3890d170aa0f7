# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_restore
short_description: Restore the app's PostgreSQL database from a backup the release ledger records
version_added: 0.1.0
description:
  - Finds a backup M(flora.deploy.db_backup) took before a schema change in the release ledger (the newest one, the
    one taken for O(release), or the one at O(key)), and puts it back into the app's database in one transaction,
    with C(pg_restore) and C(psql). What the backup holds is dropped and recreated, and the tables created after
    it (by the migrations that ran since) are dropped. A failure leaves the database as it was.
  - Refuses unless O(confirm) names the database, since everything written after the backup is lost.
  - Returns the backup, whose C(schema_of) is the release whose code matches the restored schema.
    playbooks/restore_database.yml stops the app's workers first and switches the code to that release after.
  - In check mode, finds the backup and checks the confirmation, and restores nothing.
author:
  - Flora platform team (@flora-marketplace)
options:
  ledger:
    description:
      - The release ledger that records the backups.
    type: path
    required: true
  release:
    description:
      - Restore the newest backup taken for this release (a commit, or a prefix of one), the one taken before its
        migrations ran.
      - With neither O(release) nor O(key), the newest backup.
    type: str
  key:
    description:
      - Restore the backup stored at this key.
    type: str
  confirm:
    description:
      - The name of the database, to confirm that what was written to it since the backup is to be lost.
    type: str
    required: true
requirements:
  - boto3 >= 1.26.0 and botocore >= 1.29.0 on the host, as Debian 12's C(python3-boto3) provides (amazon.aws's general
    minimum, 1.34, does not apply to the S3 calls made here)
  - C(pg_restore) and C(psql) on the host (Debian's C(postgresql-client), which playbooks/bootstrap_ec2.yml installs)
extends_documentation_fragment:
  - flora.deploy.attributes
  - flora.deploy.database
  - amazon.aws.common.modules
  - amazon.aws.region.modules
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run restores the backup again, losing what was written since the last one.
"""

EXAMPLES = r"""
- name: Restore the backup taken before a release's migrations
  flora.deploy.db_restore:
    ledger: /home/ubuntu/Flora/releases.json
    release: 4e1c2f0d9a3b
    confirm: flora_db
    env_file: /home/ubuntu/Flora/shared/backend.env
  become: true
  become_user: ubuntu
"""

RETURN = r"""
backup:
  description: The backup restored, as the ledger records it (RV(flora.deploy.db_backup#module:backup)).
  returned: always
  type: dict
dropped_tables:
  description: Tables the backup does not hold, created after it, and dropped (empty in check mode).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.database import DatabaseError, find_backup
from ansible_collections.flora.deploy.plugins.module_utils.database_host import (
    DB_ENV_ARGUMENT_SPEC,
    database_connection,
    restore_from_s3,
)
from ansible_collections.flora.deploy.plugins.module_utils.ledger_access import read_text
from ansible_collections.flora.deploy.plugins.module_utils.release_ledger import LedgerError, parse_ledger
from ansible_collections.flora.deploy.plugins.module_utils.ssm_env_file import check_sdk


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            ledger=dict(type="path", required=True),
            release=dict(type="str"),
            key=dict(type="str", no_log=False),
            confirm=dict(type="str", required=True),
            **DB_ENV_ARGUMENT_SPEC,
        ),
        mutually_exclusive=[["release", "key"]],
        supports_check_mode=True,
        check_boto3=False,
    )
    check_sdk(module)
    params = module.params
    try:
        ledger = parse_ledger(read_text(params["ledger"]))
    except (OSError, LedgerError) as e:
        module.fail_json(msg=f"Cannot read {params['ledger']}: {e}")
    backup = find_backup(ledger, release=params["release"], key=params["key"])
    recorded = [
        f"{b.get('key') or b.get('snapshot')} (for {b.get('release', '')[:12]})" for b in ledger.get("backups", [])
    ]
    if backup is None:
        wanted = (
            f"for release {params['release']}" if params["release"] else f"at {params['key']}" if params["key"] else ""
        )
        module.fail_json(
            msg=f"No backup {wanted} is recorded in {params['ledger']}"
            + (f"; recorded: {', '.join(recorded)}" if recorded else ": no backup was ever taken")
        )
    if "key" not in backup:
        module.fail_json(
            msg=f"The backup for {backup['release'][:12]} is the RDS snapshot {backup.get('snapshot')}: restore it "
            "with RDS (a new instance from the snapshot), then point DATABASE_URL at it"
        )
    connection = database_connection(module)
    if params["confirm"] != connection.database:
        module.fail_json(
            msg=f"Restoring s3://{backup['bucket']}/{backup['key']} replaces the database {connection.database} with "
            f"its state at {backup['taken_at']}, and everything written since is lost. Confirm with the database's "
            f"name ({connection.database}); nothing was changed."
        )
    if module.check_mode:
        module.exit_json(changed=True, backup=backup, dropped_tables=[])
    try:
        dropped = restore_from_s3(module, connection, backup)
    except DatabaseError as e:
        module.fail_json(msg=str(e), backup=backup)
    module.exit_json(changed=True, backup=backup, dropped_tables=dropped)


if __name__ == "__main__":
    main()
