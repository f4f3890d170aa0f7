# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_backup
short_description: Back up the app's PostgreSQL database to S3 before a schema change
version_added: 0.1.0
description:
  - Streams C(pg_dump --format=custom) of the app's database straight to an S3 object, server-side encrypted,
    without a copy on the host's disk. Returns the backup for M(flora.deploy.release_ledger)'s O(flora.deploy.release_ledger#module:backup).
  - The object is named after the release the backup is taken for,
    C(<prefix><database>/<release>-<time>.dump), and carries the release and the release whose schema it holds
    (the live one) in its metadata, so M(flora.deploy.db_restore) can put the database and the code back together.
  - The database is the app's own C(DATABASE_URL), read from the env file the app reads; C(pg_dump) gets it through
    libpq's environment, never on a command line. C(pg_dump) must be at least the server's major version.
  - When C(pg_dump) fails, the partial object is deleted and the module fails with C(pg_dump)'s message.
author:
  - Flora platform team (@flora-marketplace)
options:
  bucket:
    description:
      - The bucket the backup is written to. The host's credentials need C(s3:PutObject) on it.
    type: str
    required: true
  prefix:
    description:
      - Key prefix of the backups.
    type: str
    default: db-backups/
  release:
    description:
      - The release (commit) the backup is taken for, the one whose migrations run next.
    type: str
    required: true
  schema_of:
    description:
      - The release whose schema the database has now (the live one), whose code runs with the restored backup.
    type: str
    required: true
  migrations:
    description:
      - The migrations about to run, recorded with the backup.
    type: list
    elements: str
    default: []
  encryption:
    description:
      - Server-side encryption of the object.
    type: str
    choices: [AES256, aws:kms]
    default: AES256
  encryption_kms_key_id:
    description:
      - The KMS key with O(encryption=aws:kms); the bucket's default key when omitted.
    type: str
requirements:
  - boto3 >= 1.26.0 and botocore >= 1.29.0 on the host, as Debian 12's C(python3-boto3) provides (amazon.aws's general
    minimum, 1.34, does not apply to the S3 calls made here)
  - C(pg_dump) on the host (Debian's C(postgresql-client), which playbooks/bootstrap_ec2.yml installs)
extends_documentation_fragment:
  - flora.deploy.attributes
  - flora.deploy.database
  - amazon.aws.common.modules
  - amazon.aws.region.modules
attributes:
  check_mode:
    support: full
    details: Reports the backup it would take, and takes none.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run takes a new backup.
"""

EXAMPLES = r"""
- name: Back up the database before the migrations run
  flora.deploy.db_backup:
    bucket: flora-db-backups-prod
    release: "{{ backend_redeploy__plan.commit }}"
    schema_of: "{{ backend_redeploy__plan.live }}"
    migrations: "{{ pending.pending_names }}"
    env_file: /home/ubuntu/Flora/shared/backend.env
  become: true
  become_user: ubuntu
"""

RETURN = r"""
backup:
  description: The backup, as the release ledger records it.
  returned: always
  type: dict
  contains:
    bucket:
      description: The bucket.
      type: str
    key:
      description: The object's key.
      type: str
      sample: db-backups/flora_db/4e1c2f0d9a3b5c7e8f9a0b1c2d3e4f5a6b7c8d9e-20261207T031500Z.dump
    size:
      description: Its size in bytes (0 in check mode).
      type: int
    encryption:
      description: The server-side encryption S3 reports for it.
      type: str
    release:
      description: The release it was taken for.
      type: str
    schema_of:
      description: The release whose schema it holds.
      type: str
    migrations:
      description: The migrations that were about to run.
      type: list
      elements: str
    database:
      description: The database's name.
      type: str
    taken_at:
      description: When it was taken (UTC, ISO 8601).
      type: str
"""

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.database import DatabaseError, backup_key
from ansible_collections.flora.deploy.plugins.module_utils.database_host import (
    DB_ENV_ARGUMENT_SPEC,
    database_connection,
    dump_to_s3,
)
from ansible_collections.flora.deploy.plugins.module_utils.ssm_env_file import check_sdk


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            prefix=dict(type="str", default="db-backups/"),
            release=dict(type="str", required=True),
            schema_of=dict(type="str", required=True),
            migrations=dict(type="list", elements="str", default=[]),
            encryption=dict(type="str", choices=["AES256", "aws:kms"], default="AES256"),
            encryption_kms_key_id=dict(type="str"),
            **DB_ENV_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
        check_boto3=False,
    )
    check_sdk(module)
    params = module.params
    connection = database_connection(module)
    taken_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    backup = {
        "bucket": params["bucket"],
        "key": backup_key(params["prefix"], connection.database, params["release"], taken_at),
        "size": 0,
        "encryption": params["encryption"],
        "release": params["release"],
        "schema_of": params["schema_of"],
        "migrations": params["migrations"],
        "database": connection.database,
        "taken_at": taken_at,
    }
    if module.check_mode:
        module.exit_json(changed=True, backup=backup)
    try:
        backup.update(dump_to_s3(module, connection, backup))
    except DatabaseError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=True, backup=backup)


if __name__ == "__main__":
    main()
