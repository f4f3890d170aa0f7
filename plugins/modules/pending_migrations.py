# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pending_migrations
short_description: List the schema migrations of a commit that the app's database has not applied
version_added: 0.1.0
description:
  - Reads the Prisma migrations (C(<migrations_dir>/<name>/migration.sql)) of a commit from the host's repository
    cache, without checking the commit out, and the migrations the database recorded as applied in Prisma's
    C(_prisma_migrations) table; returns the ones not applied yet, with their SQL, in the order Prisma applies them.
  - The database is the app's own C(DATABASE_URL), read from the env file the app reads. It reaches C(psql) through
    libpq's environment (C(PGHOST), C(PGPASSWORD)...), never on a command line, and never appears in the result.
  - A database where no migration ever ran (no C(_prisma_migrations) table) has every migration pending.
  - It only reads, with one exception in check mode. A check run of a redeploy resolves the ref without fetching
    it, so a new commit may not be in the cache yet; with O(repo_url), it is fetched into the cache then (the
    cache alone, nothing the app runs), so that the check can say which migrations would run. Without
    O(repo_url), or when the remote does not have it, RV(known) is false and RV(pending) empty.
author:
  - Flora platform team (@flora-marketplace)
requirements:
  - C(git) and C(psql) on the host (Debian's C(postgresql-client), which playbooks/bootstrap_ec2.yml installs)
options:
  repo:
    description:
      - The bare repository cache holding O(commit) (what M(flora.deploy.redeploy_preflight) fetched).
    type: path
    required: true
  commit:
    description:
      - The commit whose migrations are compared with the database.
    type: str
    required: true
  repo_url:
    description:
      - The repository O(repo) caches, to fetch O(commit) from in check mode when the cache does not hold it.
    type: str
  migrations_dir:
    description:
      - The directory of the migrations in the repository.
    type: str
    default: apps/backend/prisma/migrations
extends_documentation_fragment:
  - flora.deploy.attributes
  - flora.deploy.database
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: List the migrations the database has not applied
  flora.deploy.pending_migrations:
    repo: /home/ubuntu/Flora/repo.git
    commit: "{{ backend_redeploy__plan.commit }}"
    env_file: /home/ubuntu/Flora/shared/backend.env
  become: true
  become_user: ubuntu
  register: pending
"""

RETURN = r"""
known:
  description: Whether the cache holds O(commit), so that RV(pending) is known (false only in check mode).
  returned: always
  type: bool
pending:
  description: The migrations not applied, in the order they would be.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The migration's directory name.
      type: str
      sample: 20250301000000_price
    path:
      description: Its file in the repository.
      type: str
      sample: apps/backend/prisma/migrations/20250301000000_price/migration.sql
    sql:
      description: Its SQL.
      type: str
pending_names:
  description: The names of RV(pending).
  returned: always
  type: list
  elements: str
applied:
  description: How many of the commit's migrations the database has applied.
  returned: always
  type: int
failed:
  description: Migrations the database recorded as started and not finished, and not resolved as rolled back.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.database import (
    Applied,
    applied_query,
    migration_files,
    migrations_table_query,
    parse_applied,
    pending_migrations,
)
from ansible_collections.flora.deploy.plugins.module_utils.database_host import (
    DB_ENV_ARGUMENT_SPEC,
    database_connection,
    psql,
)
from ansible_collections.flora.deploy.plugins.module_utils.git_cache import REFSPECS


def git(module, *args: str) -> str:
    rc, out, err = module.run_command(["git", "-C", module.params["repo"], *args])
    if rc != 0:
        module.fail_json(msg=f"git {args[0]} in {module.params['repo']} failed: {err.strip()}")
    return out


def has_commit(module, commit: str) -> bool:
    return module.run_command(["git", "-C", module.params["repo"], "cat-file", "-e", f"{commit}^{{commit}}"])[0] == 0


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo=dict(type="path", required=True),
            commit=dict(type="str", required=True),
            repo_url=dict(type="str"),
            migrations_dir=dict(type="str", default="apps/backend/prisma/migrations"),
            **DB_ENV_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    params = module.params
    commit, migrations_dir = params["commit"], params["migrations_dir"].strip("/")
    if module.check_mode and not has_commit(module, commit):
        if params["repo_url"]:
            git(module, "fetch", "--quiet", "--", params["repo_url"], *REFSPECS)
        if not has_commit(module, commit):
            module.exit_json(changed=False, known=False, pending=[], pending_names=[], applied=0, failed=[])
    listing = git(module, "ls-tree", "-r", "--name-only", commit, "--", migrations_dir)
    files = migration_files(listing.splitlines(), migrations_dir)

    connection = database_connection(module)
    failure = f"Cannot read the migrations the database {connection.database} applied"
    applied = Applied(frozenset(), ())
    if psql(module, connection, migrations_table_query(connection.schema), failure).strip() == "t":
        applied = parse_applied(psql(module, connection, applied_query(connection.schema), failure))
    names = pending_migrations(files, applied)
    pending = [
        {"name": name, "path": files[name], "sql": git(module, "show", f"{commit}:{files[name]}")} for name in names
    ]
    module.exit_json(
        changed=False,
        known=True,
        pending=pending,
        pending_names=names,
        applied=len(files) - len(names),
        failed=list(applied.failed),
    )


if __name__ == "__main__":
    main()
