# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_rollback
short_description: Put a build published with s3_publish back live from what the bucket keeps
version_added: 0.2.0
description:
  - Puts one of the builds M(flora.deploy.s3_publish) keeps in the bucket (the current one and O(keep_previous)
    before it) back live, by copies inside the bucket. Nothing is uploaded from the machine it runs on and no
    build is needed, so it takes seconds whatever the size of the build.
  - By default it puts back the previous build, the newest build before the live one that serves something else.
    When the live build is itself a rollback, the build before the one it put back, so a second rollback goes one
    build further back. O(build_id) or O(commit) name another retained build.
  - Content-hashed files are still in the bucket under their own names. Every file a later publish overwrote
    (C(index.html), unhashed images) was copied aside by M(flora.deploy.s3_publish) under
    C(<prefix>.publish/objects/<sha256>) first, while a retained build needed it; those copies are put back with
    the headers the build's manifest records.
  - The order is the publish's. Files other than entry documents first, entry documents last, then a new manifest
    that records the build's source (so M(flora.deploy.deploy_plan) sees its commit as live) and the build it
    restores (C(restored_from)), then the objects no retained build needs. A rollback is a publish, and counts
    against O(keep_previous).
  - When a file of the build is no longer in the bucket (a build published before stored copies existed, or by
    other tools), the module fails naming it before anything changes.
  - When the build is already live, nothing changes (C(changed=false)).
author:
  - Flora platform team (@flora-marketplace)
options:
  bucket:
    description:
      - Name of the bucket the builds are published to.
    type: str
    required: true
  prefix:
    description:
      - Key prefix the builds are published under, as given to M(flora.deploy.s3_publish).
    type: str
    default: ''
  build_id:
    description:
      - The build to put back, as M(flora.deploy.s3_publish) returned it (C(build_id)) or as its manifest is named.
      - Mutually exclusive with O(commit).
    type: str
  commit:
    description:
      - Put back the newest retained build whose manifest records this commit (its full ID, or at least 7
        characters of it).
      - Mutually exclusive with O(build_id).
    type: str
  keep_previous:
    description:
      - How many previous builds stay complete in the bucket, as given to M(flora.deploy.s3_publish). Only these
        can be put back.
    type: int
    default: 2
  workers:
    description:
      - How many requests run in parallel.
    type: int
    default: 16
  entry_documents:
    description:
      - The files that reference the others, put back last, as given to M(flora.deploy.s3_publish).
    type: list
    elements: str
    default: ['*.html']
  base:
    description:
      - The URL path the site is served under (Vite's C(base)), to resolve what C(index.html) references into
        RV(build.referenced).
    type: str
    default: /
notes:
  - Use the same O(prefix), O(keep_previous) and O(entry_documents) as the publishes.
  - IAM permissions used are C(s3:ListBucket), C(s3:GetObject), C(s3:PutObject) (C(CopyObject) and the
    manifest), C(s3:DeleteObject), and C(s3:PutObjectAcl) when O(acl) is set.
  - The paths in RV(invalidation_paths) are the files that are not content-hashed and differ from the build live
    before; with O(distribution_id) they are invalidated.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - flora.deploy.attributes
  - flora.deploy.s3_write
  - flora.deploy.s3_site
attributes:
  check_mode:
    support: full
    details:
      - Reads the bucket and reports which build would be put back and which files would be copied; writes
        nothing.
  diff_mode:
    support: full
    details:
      - One line per key with the first 12 characters of its SHA-256 and its Cache-Control, and one per manifest.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Put the previous build back live
  flora.deploy.s3_rollback:
    bucket: flora-frontend-prod
  register: frontend__rollback

- name: Put the previous build back, invalidate what changed and read it back
  flora.deploy.s3_rollback:
    bucket: flora-frontend-prod
    distribution_id: E2EXAMPLE12345
    verify: true

- name: Put back the build of a commit
  flora.deploy.s3_rollback:
    bucket: flora-frontend-prod
    commit: 3f2a9c1
"""

RETURN = r"""
msg:
  description:
    - What the rollback did (or would do, in check mode), naming the build it puts back and its commit when its
      manifest records one, and how many files it copied; or that the build is live already.
  returned: success
  type: str
  sample: >-
    Put 20250301T120000.123456Z-3f2a9c1b7d4e (commit 3f2a9c1b7d4e8a0f5c6b2e1d9a8c7b6e5d4c3b2a) back live in
    s3://flora-frontend/: 3 files copied inside the bucket
restored_build_id:
  description: The build put back (or that would be, in check mode), as its manifest names it.
  returned: success
  type: str
  sample: 20250301T120000.123456Z-3f2a9c1b7d4e
build_id:
  description: The ID of the publish that put it back; the live build's ID when it was live already.
  returned: success
  type: str
  sample: 20250302T090000.000000Z-3f2a9c1b7d4e
manifest_key:
  description: The key of the manifest that now describes the live build.
  returned: success
  type: str
  sample: .publish/manifests/20250302T090000.000000Z-3f2a9c1b7d4e.json
source:
  description: What the build put back was made from, as its manifest records it.
  returned: success
  type: dict
  sample: {"commit": "3f2a9c1b7d4e8a0f5c6b2e1d9a8c7b6e5d4c3b2a"}
previous_source:
  description: What the build live before was made from.
  returned: success
  type: dict
uploaded:
  description: How many files were put back (copied inside the bucket); nothing is uploaded from the machine.
  returned: success
  type: int
  sample: 3
unchanged:
  description: How many files of the build the live objects already were.
  returned: success
  type: int
  sample: 52
deleted:
  description: How many objects were deleted because no retained build references them.
  returned: success
  type: int
  sample: 13
retained:
  description: How many objects are kept only because a previous build references them.
  returned: success
  type: int
  sample: 14
bytes_uploaded:
  description: The size of the files put back together, in bytes (copied inside S3, not sent).
  returned: success
  type: int
  sample: 2048
changed_keys:
  description: The keys put back, entry documents last.
  returned: success
  type: list
  elements: str
  sample: ["hero.jpg", "index.html"]
invalidation_paths:
  description: V(/) followed by the path of every file that is not content-hashed and differs from the build live
    before, sorted.
  returned: success
  type: list
  elements: str
  sample: ["/hero.jpg", "/index.html"]
deleted_keys:
  description: The keys of the deleted objects.
  returned: success
  type: list
  elements: str
build:
  description: The build's C(index.html) and the files it references, as its manifest records them (path, sha256,
    size, cache_control, content_type, and url for the references), as M(flora.deploy.frontend_build_check) returns
    them for a local build.
  returned: success
  type: dict
  contains:
    index:
      description: C(index.html).
      type: dict
    referenced:
      description: The files C(index.html) references, sorted by path.
      type: list
      elements: dict
invalidation:
  description: With a distribution, the invalidation, as M(flora.deploy.s3_publish) returns it.
  returned: success, with a distribution
  type: dict
verify:
  description: With O(verify), what the bucket holds for each object read back; empty in check mode.
  returned: success
  type: dict
"""

import datetime
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.module_exit import exit_json_without_final_collection
from ansible_collections.flora.deploy.plugins.module_utils.s3_module import (
    DISTRIBUTION_SELECTORS,
    SITE_ARGUMENT_SPEC,
    carry_out,
    check_write_options,
    read_distribution,
    reading,
    s3_client,
    site_result,
    start_reading_distribution,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    OBJECT_WRITE_ARGUMENT_SPEC,
    normalise_prefix,
    plan_diff,
    plan_result,
    read_remote_state,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_rollback import (
    index_entry,
    index_source_key,
    plan_rollback,
    referenced_by_index,
    rollback_summary,
)


def main():
    argument_spec = {
        "bucket": {"type": "str", "required": True},
        "prefix": {"type": "str", "default": ""},
        "build_id": {"type": "str"},
        "commit": {"type": "str"},
        "keep_previous": {"type": "int", "default": 2},
        "workers": {"type": "int", "default": 16},
        "entry_documents": {"type": "list", "elements": "str", "default": ["*.html"]},
        "base": {"type": "str", "default": "/"},
        **OBJECT_WRITE_ARGUMENT_SPEC,
        **SITE_ARGUMENT_SPEC,
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[["build_id", "commit"], DISTRIBUTION_SELECTORS],
    )
    check_write_options(module)
    params = module.params
    bucket, workers, keep_previous = params["bucket"], params["workers"], params["keep_previous"]

    prefix = normalise_prefix(params["prefix"])
    location = f"s3://{bucket}/{prefix}"
    with ThreadPoolExecutor(max_workers=2) as pool:
        client = s3_client(module)
        # The distribution is read while the bucket is; the invalidation is made while the bucket is read back.
        pending = start_reading_distribution(module, pool)
        with reading(module, bucket, location):
            remote = read_remote_state(client, bucket, prefix, [], keep_previous, workers)
            plan, target = plan_rollback(
                prefix,
                remote,
                keep_previous,
                params["entry_documents"],
                datetime.datetime.now(datetime.UTC),
                location,
                build_id=params["build_id"],
                commit=params["commit"],
            )
            index_key = index_source_key(prefix, plan.files)
            html = client.get_object(Bucket=bucket, Key=index_key, aws_retry=True)["Body"].read()
            referenced = referenced_by_index(html.decode("utf-8", errors="replace"), target, params["base"], location)

        distribution = read_distribution(module, pending)
        result = plan_result(plan)
        result.update(
            msg=rollback_summary(plan, target, location, module.check_mode),
            restored_build_id=target.build_id,
            source=target.source or {},
            build={"index": index_entry(target), "referenced": [item.to_dict() for item in referenced]},
        )
        if module._diff:
            result["diff"] = plan_diff(plan, remote, bucket)
        carry_out(module, client, plan, f"Failed to put build {target.build_id} back in {location}")
        result.update(site_result(module, client, plan, distribution, result["build"], pool))
    exit_json_without_final_collection(module, **result)


if __name__ == "__main__":
    main()
