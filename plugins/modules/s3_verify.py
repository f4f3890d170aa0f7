# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_verify
short_description: Check that an S3 bucket holds the files of a local build, with signed requests
version_added: 0.1.0
description:
  - Reads back what M(flora.deploy.s3_publish) published without reading the bucket anonymously. A private
    bucket, served only through CloudFront's origin access, answers anonymous requests with 403.
  - Sends one signed C(HeadObject) per file (in parallel; no body is downloaded) and compares what S3 stored with
    the local file. The size, C(Content-Type) and C(Cache-Control) must be the ones M(flora.deploy.s3_publish) gives
    the file (the same O(cache_rules) and O(content_types)), and every SHA-256 S3 holds for the object must be
    the file's. C(HeadObject) is sent with C(ChecksumMode=ENABLED), so the SHA-256 checksum S3 keeps for an upload
    sent with one is compared, as well as the C(sha256) user metadata M(flora.deploy.s3_publish) gives every object.
    An object with neither fails the check.
  - Fails when any object is missing or differs, with one line per object naming what S3 has and what the build
    has. Changes nothing, in check mode too.
author:
  - Flora platform team (@flora-marketplace)
options:
  bucket:
    description:
      - Name of the bucket.
    type: str
    required: true
  src:
    description:
      - The build directory, as given to M(flora.deploy.s3_publish). It must contain C(index.html).
      - Exactly one of O(src) and O(objects) is required.
    type: path
  objects:
    description:
      - The objects to expect instead of a local build, as M(flora.deploy.frontend_build_check) returns them
        (C(index) and the C(referenced) files) or M(flora.deploy.s3_rollback) does for the build it puts back.
      - Exactly one of O(src) and O(objects) is required. O(paths), O(cache_rules) and O(content_types) apply to
        O(src) only.
    type: list
    elements: dict
    suboptions:
      path:
        description:
          - The path relative to the build, not URL-encoded.
        type: str
        required: true
      sha256:
        description:
          - The SHA-256 of its content, in hex.
        type: str
        required: true
      size:
        description:
          - Its size in bytes.
        type: int
        required: true
      cache_control:
        description:
          - The Cache-Control it must have.
        type: str
        required: true
      content_type:
        description:
          - The Content-Type it must have.
        type: str
        required: true
      url:
        description:
          - Not checked. Accepted so that the C(referenced) lists of M(flora.deploy.frontend_build_check) and
            M(flora.deploy.s3_rollback) can be passed as they are.
        type: str
  prefix:
    description:
      - The key prefix the build was published under, normalised as M(flora.deploy.s3_publish) does (V(/site),
        V(site/) and V(site//) all mean C(site/)).
    type: str
    default: ''
  paths:
    description:
      - The files to check, relative to O(src) and not URL-encoded, for example C(index.html) and the files
        M(flora.deploy.frontend_build_check) returns as C(referenced).
      - Each must be a file of the build; without it, every file of the build is checked.
    type: list
    elements: str
  workers:
    description:
      - How many C(HeadObject) requests run in parallel.
    type: int
    default: 8
  cache_rules:
    description:
      - The Cache-Control rules of M(flora.deploy.s3_publish), tried before the built-in ones; see there.
    type: list
    elements: dict
    suboptions:
      glob:
        description:
          - A C(fnmatch) pattern. Exactly one of O(cache_rules[].glob) and O(cache_rules[].regex) is required.
        type: str
      regex:
        description:
          - A Python regular expression, found anywhere in the path (C(re.search)).
        type: str
      cache_control:
        description:
          - The Cache-Control header for matching files.
        type: str
        required: true
  content_types:
    description:
      - Content-Type by file extension, tried before the built-in table of M(flora.deploy.s3_publish).
    type: dict
notes:
  - IAM permissions used are C(s3:GetObject) (for C(HeadObject)), and C(s3:ListBucket) so that a missing object
    reads as missing (without it S3 answers 403). With SSE-KMS, reading the stored checksum also needs
    C(kms:Decrypt) on the key.
  - S3 is strongly consistent, so an object is read once; reading through a CDN, which may still serve an older
    copy, is M(flora.deploy.http_check)'s job.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads only; runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Check the objects of the build put back live
  flora.deploy.s3_verify:
    bucket: flora-frontend-prod
    objects: "{{ [frontend__rollback.build.index] + frontend__rollback.build.referenced }}"

- name: Check the build directory and the files index.html references
  flora.deploy.frontend_build_check:
    src: /srv/Flora/apps/frontend/dist
  register: frontend__build

- name: Publish the build
  flora.deploy.s3_publish:
    bucket: flora-frontend-prod
    src: /srv/Flora/apps/frontend/dist

- name: Read index.html and every file it references back from the private bucket
  flora.deploy.s3_verify:
    bucket: flora-frontend-prod
    src: /srv/Flora/apps/frontend/dist
    paths: "{{ ['index.html'] + (frontend__build.referenced | map(attribute='path') | list) }}"

- name: Check every file of a build published under a prefix
  flora.deploy.s3_verify:
    bucket: flora-frontend-staging
    src: /srv/build/dist
    prefix: staging
    workers: 16
"""

RETURN = r"""
checked:
  description: What S3 holds for each file, in the order of O(paths) (of the build's files without it).
  returned: success and when objects differ
  type: list
  elements: dict
  contains:
    path:
      description: The file's path relative to O(src).
      type: str
      sample: assets/index-3TWYBq9S.js
    key:
      description: Its key in the bucket.
      type: str
      sample: assets/index-3TWYBq9S.js
    exists:
      description: Whether the bucket has the key.
      type: bool
    ok:
      description: Whether the object is the file as published.
      type: bool
    size:
      description: The object's size in bytes, when it exists.
      type: int
    cache_control:
      description: Its C(Cache-Control), when it exists.
      type: str
      sample: public,max-age=31536000,immutable
    content_type:
      description: Its C(Content-Type), when it exists.
      type: str
      sample: text/javascript; charset=utf-8
    sha256:
      description: The SHA-256 S3 holds for it, in hex (its checksum when it has one, else its C(sha256) metadata).
      type: str
    sha256_from:
      description: Where RV(checked[].sha256) comes from, V(checksum) or V(metadata); null when S3 holds neither.
      type: str
      sample: metadata
failures:
  description: One line per object that is missing or differs.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      s3://flora-frontend-prod/assets/index-B7hC2kQe.css has Content-Type text/plain
      (the build has text/css; charset=utf-8)
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.module_exit import exit_json_without_final_collection
from ansible_collections.flora.deploy.plugins.module_utils.s3_module import reading, s3_client
from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    BUILD_FILE_RULES_ARGUMENT_SPEC,
    PublishError,
    check_build_directory,
    compile_cache_rules,
    describe_local_files,
    normalise_content_type_overrides,
    normalise_prefix,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_verify import (
    expected_objects,
    select_build_files,
    verify_objects,
)


def main():
    argument_spec = {
        "bucket": {"type": "str", "required": True},
        "src": {"type": "path"},
        "objects": {
            "type": "list",
            "elements": "dict",
            "options": {
                "path": {"type": "str", "required": True},
                "sha256": {"type": "str", "required": True},
                "size": {"type": "int", "required": True},
                "cache_control": {"type": "str", "required": True},
                "content_type": {"type": "str", "required": True},
                "url": {"type": "str"},
            },
        },
        "prefix": {"type": "str", "default": ""},
        "paths": {"type": "list", "elements": "str"},
        "workers": {"type": "int", "default": 8},
        **BUILD_FILE_RULES_ARGUMENT_SPEC,
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[["src", "objects"], ["objects", "paths"]],
        required_one_of=[["src", "objects"]],
    )
    params = module.params
    bucket, workers = params["bucket"], params["workers"]
    if workers < 1:
        module.fail_json(msg="workers must be at least 1")

    prefix = normalise_prefix(params["prefix"])
    location = f"s3://{bucket}/{prefix}"
    try:
        if params["objects"] is not None:
            files = expected_objects(params["objects"])
        else:
            files = describe_local_files(
                select_build_files(check_build_directory(params["src"]), params["paths"]),
                compile_cache_rules(params["cache_rules"]),
                normalise_content_type_overrides(params["content_types"]),
            )
    except PublishError as e:
        module.fail_json(msg=str(e))

    with reading(module, bucket, location):
        checked, failures = verify_objects(s3_client(module), bucket, prefix, files, workers)

    if failures:
        module.fail_json(
            msg=f"{len(failures)} of {len(checked)} objects in {location} are not the build"
            + (f" in {params['src']}" if params["src"] else "")
            + ": "
            + "; ".join(failures),
            checked=checked,
            failures=failures,
        )
    exit_json_without_final_collection(module, changed=False, checked=checked, failures=[])


if __name__ == "__main__":
    main()
