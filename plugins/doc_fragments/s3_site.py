# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The site around the bucket, for the modules that write a published build (s3_publish, s3_rollback)."""

    DOCUMENTATION = r"""
options:
  distribution_id:
    description:
      - The CloudFront distribution in front of the bucket. It is read (C(GetDistribution)) before anything is
        written, so a distribution that does not exist fails the module with nothing written. After the writes, the
        changed files that are not content-hashed are invalidated on it, with V(/) when the distribution's default
        root object is among them (CloudFront caches it under both), as M(flora.deploy.cloudfront_invalidation)
        does; the build ID is the release ID, so a repeated run creates nothing.
      - At most one of O(distribution_id), O(distribution_alias) and O(distribution_comment). Without any, nothing
        is invalidated.
    type: str
  distribution_alias:
    description:
      - Find the distribution by one of its alternate domain names, or its own C(cloudfront.net) name (needs
        C(cloudfront:ListDistributions)).
    type: str
  distribution_comment:
    description:
      - Find the distribution whose comment contains this text; more than one match fails (needs
        C(cloudfront:ListDistributions)).
    type: str
  invalidate_all:
    description:
      - Invalidate V(/*) whenever a file was written, instead of the changed paths.
    type: bool
    default: false
  invalidation_extra_paths:
    description:
      - Paths invalidated as well whenever there is something to invalidate.
    type: list
    elements: str
    default: []
  invalidation_wait:
    description:
      - Wait until the invalidation has completed.
    type: bool
    default: false
  invalidation_wait_timeout:
    description:
      - How many seconds to wait with O(invalidation_wait=true).
    type: int
    default: 600
  verify:
    description:
      - After the writes, read C(index.html) and every file it references back from the bucket, with one signed
        C(HeadObject) each, in parallel (no body downloaded), and fail naming each object whose size,
        Cache-Control, Content-Type or SHA-256 is not the build's, as M(flora.deploy.s3_verify) does. Also when
        nothing was written, since the listing cannot show headers rewritten in place. Not in check mode.
    type: bool
    default: false
"""
