# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_publish
short_description: Publish a static build directory to an S3 bucket by content
version_added: 0.1.0
description:
  - Uploads the files of a static site build (for example Vite's C(dist/)) to an S3 bucket, replacing C(aws s3 sync).
  - Files are compared by content, not modification time. Each object carries its SHA-256 in the user metadata
    C(sha256), and each published build is recorded in a JSON manifest stored in the bucket under
    C(<prefix>.publish/manifests/<UTC timestamp>-<build hash>.json) with the SHA-256, size, ETag, Cache-Control and
    Content-Type of every file.
  - The current state is read with one C(ListObjectsV2) listing of the prefix and a C(GetObject) of the newest
    O(keep_previous) + 1 manifests. A file is unchanged when the listed object still has the size and ETag a manifest
    recorded and the recorded SHA-256, Cache-Control and Content-Type equal the local ones. Objects no manifest
    vouches for (left by an interrupted publish, or by other tools) get one C(HeadObject) each to read their
    C(sha256) metadata, so an interrupted publish resumes without uploading again.
  - A rebuild with identical content uploads nothing, writes no manifest and reports no change (C(changed=false)).
  - Uploads run in parallel. Entry documents (O(entry_documents)) are uploaded only after every other file, then the
    manifest is written, and only then are old objects deleted, so a visitor never gets an entry document that
    references a missing file.
  - Objects referenced by the previous O(keep_previous) builds stay, so a browser still holding the previous
    C(index.html) can load its assets. Only objects that no retained build references are deleted, together with the
    manifests of builds that are no longer retained.
  - On the first publish into a prefix that has objects but no manifest (for example one published with
    C(aws s3 sync)), the objects the new build does not overwrite are recorded in a manifest of their own and treated
    as the previous build, so they age out later instead of being deleted at once.
  - Before any AWS client is created, the module refuses a O(src) that is missing, has no files, has no
    C(index.html) at its top, or lacks a file C(index.html) references (scripts, stylesheets, icons, modulepreloads,
    images), as M(flora.deploy.frontend_build_check) does; RV(missing) names those files.
  - With a CloudFront distribution (O(distribution_id)), the distribution is read before anything is written and
    what changed is invalidated after (RV(invalidation)); with O(verify), what was written is read back
    (RV(verify)). A publish, its invalidation and its read-back are then one call, one process and one set of
    clients.
author:
  - Flora platform team (@flora-marketplace)
options:
  bucket:
    description:
      - Name of the bucket to publish to. The bucket must exist.
    type: str
    required: true
  src:
    description:
      - The build directory to publish. It must contain C(index.html).
      - Every regular file is published, hidden files included (for example C(.well-known/)). Symbolic links are
        followed only when they point to a regular file inside O(src); linked directories are skipped.
      - The directory C(.publish/) at its top is reserved for manifests and makes the module fail.
    type: path
    required: true
  base:
    description:
      - The URL path the site is served under (Vite's C(base)), to resolve what C(index.html) references.
    type: str
    default: /
  prefix:
    description:
      - Key prefix to publish under. A leading V(/) is removed and a single trailing V(/) is added, so V(/site),
        V(site/) and V(site//) all publish under C(site/).
      - The empty default publishes at the root of the bucket.
    type: str
    default: ''
  workers:
    description:
      - How many requests run in parallel (uploads, C(HeadObject) and manifest reads).
      - Each upload holds its file in memory while it runs. Small files cost a round trip each, so more requests in
        flight keep a long link busy.
    type: int
    default: 16
  source:
    description:
      - What the build was made from, for example the keys C(commit) and C(env_checksum), recorded in the build's
        manifest and returned as RV(source), so a later run (M(flora.deploy.deploy_plan)) can tell which commit
        the site serves. Keep secrets out of it; manifests are objects in the bucket.
      - When the content is already published with another source, only a new manifest is written; nothing is
        uploaded or invalidated.
      - Without it, the source of the build published last is kept.
    type: dict
  keep_previous:
    description:
      - How many previous builds stay complete in the bucket next to the current one.
      - V(0) keeps only the current build; objects of earlier builds are deleted.
    type: int
    default: 2
  entry_documents:
    description:
      - Glob patterns (matched with Python's C(fnmatch) against the path relative to O(src); V(*) matches V(/) too) of
        the files that reference the others. They are uploaded last.
    type: list
    elements: str
    default: ['*.html']
  cache_rules:
    description:
      - Rules that choose each file's Cache-Control header. The first rule that matches the path relative to O(src)
        wins.
      - These rules are tried before the built-in ones, which are, in order
        V(*.html) -> V(public,max-age=60);
        content-hashed names such as Vite's C(assets/index-AbCd1234.js) and their C(.map) files (a C(-), 8 characters
        of C([A-Za-z0-9_-]) including at least one digit or capital letter, then the extension, in an C(assets/)
        directory) -> V(public,max-age=31536000,immutable);
        every other file -> V(public,max-age=0,must-revalidate).
      - A file whose Cache-Control contains C(immutable) is treated as content-hashed and never appears in
        RV(invalidation_paths).
    type: list
    elements: dict
    suboptions:
      glob:
        description:
          - A C(fnmatch) pattern. Exactly one of O(cache_rules[].glob) and O(cache_rules[].regex) is required.
        type: str
      regex:
        description:
          - A Python regular expression, found anywhere in the path (C(re.search)); anchor it with C(^) and C($).
        type: str
      cache_control:
        description:
          - The Cache-Control header for matching files.
        type: str
        required: true
  content_types:
    description:
      - Content-Type by file extension (V(.wasm) or V(wasm)), tried before the built-in table.
      - Built in are C(.html) and C(.htm) (C(text/html; charset=utf-8)), C(.js) and C(.mjs)
        (C(text/javascript; charset=utf-8)), C(.css), C(.txt) (with C(charset=utf-8)), C(.json) and C(.map)
        (C(application/json)), C(.webmanifest), C(.xml), C(.svg), C(.png), C(.jpg), C(.jpeg), C(.gif), C(.webp),
        C(.avif), C(.ico), C(.woff), C(.woff2), C(.ttf), C(.otf) and C(.wasm).
      - Other extensions are looked up with Python's C(mimetypes); unknown ones get C(application/octet-stream).
    type: dict
  secret_parameters_path:
    description:
      - A Parameter Store path, for example V(/flora/prod). Before anything is written, every SecureString
        parameter under it (recursively, decrypted) is looked for in the text files of the build (by Content-Type,
        scripts, styles, HTML, JSON, source maps, SVG, manifests), as written and as a JSON or JavaScript string
        escapes it. A build that holds one fails the module, naming the parameter and the files (RV(secrets_found)),
        never the value.
      - Values shorter than 8 characters are not looked for. A caller that may not read the path by path
        (C(ssm:GetParametersByPath), denied to a deployer with least privilege) scans only O(secret_env_files);
        RV(secret_scan.parameters_readable) says so.
    type: str
  secret_env_files:
    description:
      - Env files (for example the backend's C(apps/backend/.env) in the app checkout the build was made in) whose
        secret values must not be in the build, scanned as O(secret_parameters_path). Only keys matching
        O(secret_env_keys) count; a missing file is skipped.
    type: list
    elements: path
    default: []
  secret_env_keys:
    description:
      - A Python regular expression (C(re.search)) for the keys of O(secret_env_files) whose values are secrets.
      - The default matches C(SECRET), C(PASS), C(TOKEN), C(PRIVATE), C(CREDENTIAL), C(API_KEY) and
        C(DATABASE_URL) in any case, so C(JWT_SECRET), C(SMTP_PASS) and C(DATABASE_URL) count and
        C(STRIPE_PUBLISHABLE_KEY) and C(AUTH0_DOMAIN) do not.
    type: str
    default: (?i)(SECRET|PASS|TOKEN|PRIVATE|CREDENTIAL|API_KEY|DATABASE_URL)
  secret_scan_required:
    description:
      - Fail, before anything is written, when the scan asked for by O(secret_parameters_path) or
        O(secret_env_files) has no secret to look for, instead of warning that the build was not checked. For
        a deployer that may not read the SecureStrings, this asks for an env file of O(secret_env_files) with the
        backend's secrets beside the build.
    type: bool
    default: false
notes:
  - The module runs where the build is, usually the controller; use C(delegate_to=localhost) or a C(localhost) play.
  - IAM permissions used are C(s3:ListBucket), C(s3:GetObject), C(s3:PutObject), C(s3:DeleteObject), and
    C(s3:PutObjectAcl) when O(acl) is set.
  - The paths in RV(invalidation_paths) are not URL-encoded. With O(distribution_id) they are invalidated (encoded,
    with V(/) for the default root object); without it, pass them to M(flora.deploy.cloudfront_invalidation).
  - With a distribution, C(cloudfront:GetDistribution), C(cloudfront:ListInvalidations),
    C(cloudfront:GetInvalidation) and C(cloudfront:CreateInvalidation) on it are used as well.
  - With O(secret_parameters_path), C(ssm:GetParametersByPath) on it (and C(kms:Decrypt) with the parameters' key),
    when the caller may; without it the scan reads no parameter.
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
      - Reads the bucket and reports what would be uploaded and deleted; writes nothing.
  diff_mode:
    support: full
    details:
      - One line per key with the first 12 characters of its SHA-256 and its Cache-Control, and one per manifest.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Publish the frontend build
  flora.deploy.s3_publish:
    bucket: flora-frontend-prod
    src: "{{ playbook_dir }}/../apps/frontend/dist"
  register: frontend__publish

- name: Publish, invalidate what changed on CloudFront and read back what was written
  flora.deploy.s3_publish:
    bucket: flora-frontend-prod
    src: "{{ playbook_dir }}/../apps/frontend/dist"
    distribution_id: E2EXAMPLE12345
    verify: true

- name: Publish under a prefix, keep five older builds, cache fonts for a day
  flora.deploy.s3_publish:
    bucket: flora-frontend-staging
    src: /srv/build/dist
    prefix: /staging
    keep_previous: 5
    workers: 16
    encryption: aws:kms
    encryption_kms_key_id: alias/flora-frontend
    cache_rules:
      - glob: "fonts/*"
        cache_control: public,max-age=86400
      - regex: "^robots\\.txt$"
        cache_control: public,max-age=3600
    content_types:
      .br: application/octet-stream
"""

RETURN = r"""
msg:
  description:
    - What the publish did (or would do, in check mode), naming the build, and its commit when its source records one,
      and how many files it uploaded (and their size), found unchanged and deleted; or that the build is live
      already, and what a publish that only prunes deleted (objects, manifests and stored copies no kept build
      needs).
  returned: success
  type: str
  sample: >-
    Published 20250301T120000.123456Z-3f2a9c1b7d4e (commit 3f2a9c1b7d4e8a0f5c6b2e1d9a8c7b6e5d4c3b2a) to
    s3://flora-frontend/: 14 files uploaded (1.2 MB), 41 unchanged, 13 deleted
uploaded:
  description: How many files were uploaded (in check mode, would be uploaded).
  returned: success
  type: int
  sample: 2
unchanged:
  description: How many files already had the same content and headers in the bucket.
  returned: success
  type: int
  sample: 5
deleted:
  description: How many objects were deleted because no retained build references them (manifests not counted).
  returned: success
  type: int
  sample: 1
retained:
  description: How many objects are kept only because one of the previous O(keep_previous) builds references them.
  returned: success
  type: int
  sample: 2
bytes_uploaded:
  description: The size of the uploaded files together, in bytes.
  returned: success
  type: int
  sample: 183204
changed_keys:
  description: The keys uploaded (or to be uploaded in check mode), entry documents last.
  returned: success
  type: list
  elements: str
  sample: ["assets/index-XyZw9876.js", "index.html"]
invalidation_paths:
  description:
    - V(/) followed by the path relative to O(src) of every file that is not content-hashed (its Cache-Control
      lacks C(immutable)) and was uploaded or differs from the build published last, sorted. Content-hashed files
      have new names, so no CDN holds a stale copy of them.
    - Comparing with the build published last keeps the files an interrupted publish already uploaded. The next run
      does not upload them again, but a CDN may still hold their previous content. Before the first complete publish
      into a prefix, every file that is not content-hashed is listed.
    - The input for a CloudFront invalidation; empty when nothing but content-hashed files changed.
  returned: success
  type: list
  elements: str
  sample: ["/index.html"]
deleted_keys:
  description: The keys of the deleted objects (manifests not included).
  returned: success
  type: list
  elements: str
  sample: ["assets/index-AbCd1234.js"]
build_id:
  description:
    - The ID of the published build, C(<UTC timestamp>-<build hash>). When the build was already published, the ID of
      that publish.
  returned: success
  type: str
  sample: 20250301T120000.123456Z-3f2a9c1b7d4e
manifest_key:
  description: The key of the manifest that describes the published build.
  returned: success
  type: str
  sample: .publish/manifests/20250301T120000.123456Z-3f2a9c1b7d4e.json
source:
  description: The source recorded for the published build (O(source), or the one already recorded).
  returned: success
  type: dict
  sample: {"commit": "3f2a9c1b7d4e8a0f5c6b2e1d9a8c7b6e5d4c3b2a"}
previous_source:
  description: The source recorded for the build published last before this run.
  returned: success
  type: dict
build:
  description: C(index.html) and the files it references, as M(flora.deploy.frontend_build_check) returns them.
  returned: success
  type: dict
  contains:
    files:
      description: How many files the build has.
      type: int
    index:
      description: C(index.html) (path, sha256, size, cache_control, content_type).
      type: dict
    referenced:
      description: The files C(index.html) references (path, url, sha256, size, cache_control, content_type).
      type: list
      elements: dict
invalidation:
  description:
    - With a distribution, the invalidation, as M(flora.deploy.cloudfront_invalidation) returns it, and what
      C(GetDistribution) said of the distribution (C(distribution) - domain_name, aliases, url,
      default_root_object). C(paths) is empty when nothing needed invalidating.
  returned: success, with a distribution
  type: dict
  sample: {"changed": true, "distribution_id": "E2EXAMPLE12345", "paths": ["/", "/index.html"],
           "invalidation_id": "I2J0I21PCUYOIK", "status": "InProgress"}
verify:
  description:
    - With O(verify), what the bucket holds for each object read back (C(checked), as M(flora.deploy.s3_verify)
      returns it); empty in check mode.
  returned: success
  type: dict
secret_scan:
  description: What was scanned for secrets before anything was written.
  returned: success
  type: dict
  contains:
    secrets:
      description: How many secret values were looked for (SecureString parameters and env file values).
      type: int
    files:
      description: How many text files of the build were scanned.
      type: int
    parameters_readable:
      description:
        - Whether the parameters under O(secret_parameters_path) could be read; null without the option.
        - When the scan has no secret to look for (the parameters may not be read, none is a SecureString, and no
          env file of O(secret_env_files) holds one), the module warns that the build was not checked.
      type: bool
  sample: {"secrets": 9, "files": 34, "parameters_readable": true}
secrets_found:
  description: The secrets the build holds, each with the files it is in; never the values.
  returned: failure, when the build holds a secret
  type: list
  elements: dict
  sample: [{"secret": "SecureString parameter /flora/prod/stripe_secret_key", "files": ["assets/index-AbCd1234.js"]}]
missing:
  description: The referenced paths the build does not have.
  returned: failure, when C(index.html) references files the build does not have
  type: list
  elements: str
"""

import datetime
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.flora.deploy.plugins.module_utils.frontend_build import BuildCheckError, report_of
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
    BUILD_FILE_RULES_ARGUMENT_SPEC,
    OBJECT_WRITE_ARGUMENT_SPEC,
    PublishError,
    check_build_directory,
    compile_cache_rules,
    describe_local_files,
    normalise_content_type_overrides,
    normalise_prefix,
    plan_diff,
    plan_publish,
    plan_result,
    publish_summary,
    read_remote_state,
)
from ansible_collections.flora.deploy.plugins.module_utils.secret_scan import (
    SECRET_SCAN_ARGUMENT_SPEC,
    check_build_for_secrets,
    start_reading_secure_parameters,
)


def main():
    argument_spec = {
        "bucket": {"type": "str", "required": True},
        "src": {"type": "path", "required": True},
        "prefix": {"type": "str", "default": ""},
        "base": {"type": "str", "default": "/"},
        "workers": {"type": "int", "default": 16},
        "keep_previous": {"type": "int", "default": 2},
        "source": {"type": "dict"},
        "entry_documents": {"type": "list", "elements": "str", "default": ["*.html"]},
        **BUILD_FILE_RULES_ARGUMENT_SPEC,
        **OBJECT_WRITE_ARGUMENT_SPEC,
        **SITE_ARGUMENT_SPEC,
        **SECRET_SCAN_ARGUMENT_SPEC,
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec, supports_check_mode=True, mutually_exclusive=[DISTRIBUTION_SELECTORS]
    )
    check_write_options(module)
    params = module.params
    bucket, workers, keep_previous = params["bucket"], params["workers"], params["keep_previous"]

    prefix = normalise_prefix(params["prefix"])
    location = f"s3://{bucket}/{prefix}"
    try:
        rules = compile_cache_rules(params["cache_rules"])
        content_types = normalise_content_type_overrides(params["content_types"])
        files = describe_local_files(check_build_directory(params["src"]), rules, content_types)
        build = report_of(params["src"], len(files), {item.path: item for item in files}, params["base"])
    except BuildCheckError as e:
        module.fail_json(msg=str(e), missing=e.missing)
    except PublishError as e:
        module.fail_json(msg=str(e))

    with ThreadPoolExecutor(max_workers=3) as pool:
        client = s3_client(module)
        # The distribution and the secrets are read while the bucket is; the invalidation is made while the bucket
        # is read back.
        pending = start_reading_distribution(module, pool)
        secrets = start_reading_secure_parameters(module, pool)
        with reading(module, bucket, location):
            remote = read_remote_state(client, bucket, prefix, files, keep_previous, workers)
            plan = plan_publish(
                prefix,
                files,
                remote,
                keep_previous,
                params["entry_documents"],
                datetime.datetime.now(datetime.UTC),
                source=params["source"],
            )
        distribution = read_distribution(module, pending)
        secret_scan = check_build_for_secrets(module, files, secrets)
        result = plan_result(plan)
        result["msg"] = publish_summary(plan, location, module.check_mode)
        result["secret_scan"] = secret_scan
        result["build"] = build.to_result()
        if module._diff:
            result["diff"] = plan_diff(plan, remote, bucket)
        carry_out(module, client, plan, f"Failed to publish {params['src']} to {location}")
        result.update(site_result(module, client, plan, distribution, result["build"], pool))
    exit_json_without_final_collection(module, **result)


if __name__ == "__main__":
    main()
