# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How the modules that reach the app's database from its host (pending_migrations, db_backup, db_restore)
    find it: the app's own DATABASE_URL, in the env file it reads."""

    DOCUMENTATION = r"""
options:
  env_file:
    description:
      - The env file the app reads, holding O(url_variable). The database's password reaches C(psql), C(pg_dump)
        and C(pg_restore) through libpq's environment, never on a command line, and never appears in the result.
    type: path
    required: true
  env_reader:
    description:
      - The parser the app reads O(env_file) with, as M(flora.deploy.ssm_env)'s O(flora.deploy.ssm_env#module:reader).
    type: str
    choices: [dotenv, python-dotenv]
    default: dotenv
  url_variable:
    description:
      - The variable of O(env_file) holding the database URL, C(postgresql://user:password@host:port/database),
        as Prisma reads it (its C(schema) parameter names the schema of C(_prisma_migrations)).
    type: str
    default: DATABASE_URL
"""
