# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How the modules that write a published build (s3_publish, s3_rollback) write its objects."""

    DOCUMENTATION = r"""
options:
  acl:
    description:
      - Canned ACL for the files written. None is set by default, so buckets with ACLs disabled work.
      - Changing it does not write unchanged files again.
    type: str
    choices:
      - private
      - public-read
      - public-read-write
      - authenticated-read
      - aws-exec-read
      - bucket-owner-read
      - bucket-owner-full-control
  encryption:
    description:
      - Server-side encryption for the files written and the manifests. By default the bucket's default encryption
        applies.
      - Changing it does not write unchanged files again.
    type: str
    choices:
      - AES256
      - aws:kms
  encryption_kms_key_id:
    description:
      - The KMS key to encrypt with when O(encryption=aws:kms). Without it S3 uses the AWS managed key.
    type: str
"""
