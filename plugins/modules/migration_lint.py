# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: migration_lint
short_description: Refuse pending PostgreSQL migrations that destroy data or lock a live table
version_added: 0.1.0
description:
  - Checks the pending schema migrations of the backend (Prisma's plain-SQL C(migration.sql) files) before a
    redeploy applies them, on the controller, and fails when one of them destroys data or takes a long lock on a
    table the live app uses.
  - Two linters look at the migrations. L(squawk,https://squawkhq.com/) runs once over all of them. The
    collection adds its own rules for what squawk does not flag, read from PostgreSQL's own parse tree (pglast),
    V(truncate-table) for C(TRUNCATE), V(delete-without-where) for a C(DELETE) and V(update-without-where) for an
    C(UPDATE) without a C(WHERE) that depends on the row (none, or one that names no column, such as
    C(WHERE true) or C(WHERE 1 = 1)); they destroy or rewrite every row. Statements inside functions and C(DO)
    blocks are not checked.
  - A migration PostgreSQL cannot parse is a V(syntax-error) finding; it was not checked at all.
  - Each finding names the migration, the file, the line, the statement and the rule. Findings of the migrations in
    O(allowed_migrations), or all of them with O(allow_destructive), are returned in RV(allowed) and as warnings,
    and do not fail the task.
author:
  - Flora platform team (@flora-marketplace)
requirements:
  - pglast (Python package) on the controller
  - squawk-cli (Python package that installs the C(squawk) binary) on the controller
options:
  migrations:
    description:
      - The migrations to check, in the order they are applied.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The migration's name, its directory under C(prisma/migrations/) (V(20250301000000_drop_stock)).
            O(allowed_migrations) refers to it.
        type: str
        required: true
      path:
        description:
          - The path of its SQL file, as findings and the failure message name it.
        type: str
        required: true
      sql:
        description:
          - The content of the file, unchanged, so that line numbers are those of the file.
        type: str
        required: true
  excluded_rules:
    description:
      - Rules not to report, of squawk or of this collection (V(truncate-table), V(delete-without-where),
        V(update-without-where)).
      - The default leaves out squawk's rules about style and the ones every Prisma migration trips, none of which
        destroys data or locks a table, and V(ban-drop-not-null) (dropping NOT NULL keeps every row). Setting this
        option replaces the default list; O(extra_excluded_rules) adds to it instead.
      - V(syntax-error) cannot be excluded; allow the migration by name instead.
      - An unknown squawk rule name fails the task.
    type: list
    elements: str
    default:
      - prefer-robust-stmts
      - prefer-bigint-over-int
      - prefer-bigint-over-smallint
      - prefer-identity
      - prefer-text-field
      - prefer-timestamp-tz
      - ban-char-field
      - require-lock-timeout
      - require-statement-timeout
      - require-enum-value-ordering
      - ban-drop-not-null
  extra_excluded_rules:
    description:
      - Rules not to report, besides O(excluded_rules).
    type: list
    elements: str
    default: []
  included_rules:
    description:
      - squawk rules that are off unless asked for, to report as well (for example V(ban-add-column)), or rules
        the default O(excluded_rules) leaves out, to check again. A rule here is checked even when
        O(excluded_rules) or O(extra_excluded_rules) names it.
    type: list
    elements: str
    default: []
  allow_destructive:
    description:
      - Allow every finding. They are returned in RV(allowed) and the task does not fail.
    type: bool
    default: false
  allowed_migrations:
    description:
      - Names of migrations whose findings are allowed, once someone has checked what they do to the live database.
      - A name that is not among O(migrations) is ignored, so the list can stay after the migration is applied.
    type: list
    elements: str
    default: []
  assume_in_transaction:
    description:
      - Tell squawk that each migration runs in one transaction. Prisma sends a migration file as one
        multi-statement query, which PostgreSQL runs in one implicit transaction.
      - With it, an index or a foreign key on a table the same migration creates is not reported, and
        C(CREATE INDEX CONCURRENTLY) among other statements is (PostgreSQL refuses it in a transaction).
    type: bool
    default: true
  pg_version:
    description:
      - The PostgreSQL version the migrations run on (V(16) or V(16.4)), for squawk's rules that depend on it (for
        example, before 11 adding a column with a default rewrites the table). squawk assumes a recent version when
        this is not set.
    type: str
  hint:
    description:
      - The last line of the failure message, how to allow the refused findings. The default names this module's
        options; a role gives the names of its own variables.
    type: str
    default: >-
      Apply them anyway with allow_destructive=true, or by listing the migration in allowed_migrations, once you
      have checked what they do to the live database.
  squawk:
    description:
      - The squawk binary to run.
      - By default it is looked up on E(PATH), then beside the Python interpreter that runs the module (the bin
        directory of its virtual environment).
    type: path
notes:
  - Run the module on the controller (C(delegate_to=localhost)), where the migrations are read and the linters are
    installed. Both are in the collection's C(requirements.txt) and in its execution environment.
  - Only the SQL is read; whether a table already has rows or what the database holds is not known. A statement
    on a table the same migration creates is reported as if the table were in use, except where
    O(assume_in_transaction) lets squawk see it is new.
  - Statements inside functions, C(DO) blocks and procedures are not checked.
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads; it runs in check mode as it does otherwise.
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - name: squawk rules
    description: What each squawk rule reports and how to write the migration so it does not.
    link: https://squawkhq.com/docs/rules
"""

EXAMPLES = r"""
- name: Check the pending migrations before applying them
  flora.deploy.migration_lint:
    migrations:
      - name: 20250301000000_drop_stock
        path: "{{ migration_file }}"
        sql: "{{ lookup('ansible.builtin.file', migration_file) }}"
  vars:
    migration_file: /srv/flora/checkout/apps/backend/prisma/migrations/20250301000000_drop_stock/migration.sql
  delegate_to: localhost

- name: Allow one checked migration, report squawk's opt-in ban-add-column as well
  flora.deploy.migration_lint:
    migrations: "{{ backend__pending_migrations }}"
    allowed_migrations:
      - 20250301000000_drop_stock
    included_rules:
      - ban-add-column
    pg_version: "16"
    hint: Set deploy_allow_destructive=true, or list the migration in deploy_allowed_migrations.
  delegate_to: localhost
  register: backend__migration_lint

- name: Say what was allowed
  ansible.builtin.debug:
    msg: "{{ item.path }}:{{ item.line }} {{ item.rule }}: {{ item.statement }}"
  loop: "{{ backend__migration_lint.allowed }}"
"""

RETURN = r"""
checked:
  description: How many migrations were checked.
  returned: success or when findings were refused
  type: int
  sample: 2
findings:
  description:
    - The refused findings, migration by migration in the order of O(migrations), then by line. The task fails
      when there is one.
  returned: success or when findings were refused
  type: list
  elements: dict
  contains:
    migration:
      description: The migration's name.
      type: str
      sample: 20250301000000_drop_stock
    path:
      description: The path of its SQL file.
      type: str
      sample: apps/backend/prisma/migrations/20250301000000_drop_stock/migration.sql
    line:
      description: The line of the file the finding is on, from 1.
      type: int
      sample: 2
    statement:
      description: The statement, on one line, shortened to 200 characters.
      type: str
      sample: DROP TABLE "Stock"
    rule:
      description: The rule, squawk's name or V(truncate-table), V(delete-without-where), V(update-without-where)
        or V(syntax-error).
      type: str
      sample: ban-drop-table
    message:
      description: What the statement does to the live database, and how to avoid it where the linter says.
      type: str
      sample: Dropping a table may break existing clients.
    linter:
      description: Which linter found it, V(squawk) or V(flora.deploy).
      type: str
      sample: squawk
  sample:
    - migration: 20250301000000_drop_stock
      path: apps/backend/prisma/migrations/20250301000000_drop_stock/migration.sql
      line: 2
      statement: DROP TABLE "Stock"
      rule: ban-drop-table
      message: Dropping a table may break existing clients.
      linter: squawk
allowed:
  description:
    - The findings of allowed migrations (O(allowed_migrations)), or all of them with O(allow_destructive), as in
      RV(findings).
  returned: success or when findings were refused
  type: list
  elements: dict
  sample:
    - migration: 20250302000000_clear_carts
      path: apps/backend/prisma/migrations/20250302000000_clear_carts/migration.sql
      line: 1
      statement: DELETE FROM "CartItem"
      rule: delete-without-where
      message: DELETE without WHERE removes every row of the table.
      linter: flora.deploy
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.flora.deploy.plugins.module_utils.migration_lint import (
    DEFAULT_ALLOW_HINT,
    DEFAULT_EXCLUDED_RULES,
    HAS_PGLAST,
    PGLAST_IMPORT_ERROR,
    MigrationLintError,
    finding_line,
    lint_migrations,
    migrations_from_params,
    refusal_message,
)


def main() -> None:
    argument_spec = {
        "migrations": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "path": {"type": "str", "required": True},
                "sql": {"type": "str", "required": True},
            },
        },
        "excluded_rules": {"type": "list", "elements": "str", "default": list(DEFAULT_EXCLUDED_RULES)},
        "extra_excluded_rules": {"type": "list", "elements": "str", "default": []},
        "included_rules": {"type": "list", "elements": "str", "default": []},
        "allow_destructive": {"type": "bool", "default": False},
        "allowed_migrations": {"type": "list", "elements": "str", "default": []},
        "assume_in_transaction": {"type": "bool", "default": True},
        "pg_version": {"type": "str"},
        "hint": {"type": "str", "default": DEFAULT_ALLOW_HINT},
        "squawk": {"type": "path"},
    }
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_PGLAST:
        module.fail_json(msg=missing_required_lib("pglast"), exception=PGLAST_IMPORT_ERROR)
    params = module.params
    try:
        report = lint_migrations(
            migrations_from_params(params["migrations"]),
            excluded_rules=params["excluded_rules"] + params["extra_excluded_rules"],
            included_rules=params["included_rules"],
            allow_destructive=params["allow_destructive"],
            allowed_migrations=params["allowed_migrations"],
            assume_in_transaction=params["assume_in_transaction"],
            pg_version=params["pg_version"],
            squawk=params["squawk"],
        )
    except MigrationLintError as e:
        module.fail_json(msg=str(e))
    if report.refused:
        module.fail_json(msg=refusal_message(report.refused, params["hint"]), changed=False, **report.to_result())
    for finding in report.allowed:
        module.warn(f"Allowed: {finding_line(finding)}")
    module.exit_json(changed=False, **report.to_result())


if __name__ == "__main__":
    main()
