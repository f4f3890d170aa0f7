# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudfront_invalidation
short_description: Invalidate paths on a CloudFront distribution, once per release
version_added: 0.1.0
description:
  - Creates a CloudFront invalidation for a list of paths on one distribution.
  - The distribution is given by O(distribution_id), or found by O(alias) or O(comment_contains).
  - Paths are normalised, de-duplicated and sorted. When one invalidation could not hold them within
    CloudFront's limits on invalidations in progress (3,000 paths, 15 wildcard paths), or when V(/*) is among them,
    the module invalidates V(/*) instead and returns RV(collapsed=true).
  - The invalidation's caller reference is derived from the normalised paths and O(release_id). CloudFront never
    creates a second invalidation for a caller reference it already knows, so running the same task again does not
    invalidate (and bill) the same paths twice.
  - To report no change on a repeated run, and to predict the change in check mode, the module reads only the
    O(recent_invalidations) newest invalidations of the distribution (one C(ListInvalidations) call and at most that
    many C(GetInvalidation) calls, stopping at the first match). It never pages through the whole invalidation history.
  - If the matching invalidation is older than those, CloudFront still returns it instead of creating a new one and
    the module reports no change; in check mode it cannot tell and predicts a change.
  - In check mode the module first reads the distribution with C(GetDistribution), so a dry run fails for an
    unknown distribution as the real run would, and returns what it read as RV(distribution) (its domain name,
    aliases, URL and default root object) for the tasks after it.
author:
  - Flora platform team (@flora-marketplace)
options:
  distribution_id:
    description:
      - The ID of the distribution.
      - Exactly one of O(distribution_id), O(alias) and O(comment_contains) is required.
    type: str
  alias:
    description:
      - Find the distribution by one of its alternate domain names (CNAMEs), or by its own C(cloudfront.net) domain
        name. Compared case-insensitively; wildcard aliases are not expanded.
      - Lists the account's distributions, so it needs C(cloudfront:ListDistributions).
    type: str
  comment_contains:
    description:
      - Find the distribution whose comment contains this text (case-sensitive).
      - Fails when no distribution or more than one matches; the message lists the matching IDs.
      - Lists the account's distributions, so it needs C(cloudfront:ListDistributions).
    type: str
  paths:
    description:
      - The paths to invalidate, B(not) URL-encoded. A V(*) at the end of a path is a wildcard.
      - A leading V(/) is added when missing. Spaces, non-ASCII characters and the characters RFC 1738 calls unsafe
        (V(<>"#%{}|\\^~[]`)) are URL-encoded, as CloudFront requires; other characters, such as V(?)
        and V(=) in a query string, are kept. A V(*) anywhere but at the end is encoded as V(%2A).
      - Paths covered by a wildcard in the same list are dropped, for example V(/assets/app.js) when
        V(/assets/*) is given.
    type: list
    elements: str
    required: true
    aliases:
      - target_paths
  default_root_object:
    description:
      - The distribution's default root object, for example V(index.html); a dry run in check mode returns it as
        RV(distribution.default_root_object).
      - CloudFront caches the default root object under V(/) as well as under its own path, so when it is among
        O(paths), V(/) is invalidated too. When it is not, or when this is empty, nothing is added.
    type: str
    version_added: 0.1.0
  release_id:
    description:
      - Identifies the release, for example a commit SHA or build number; it is part of the caller reference.
      - Without it the same set of paths gets a single invalidation for the lifetime of the distribution, so a later
        deploy that invalidates the same paths would be a no-op. Set it whenever the content changes.
    type: str
  recent_invalidations:
    description:
      - How many of the distribution's newest invalidations are read to find one with the same caller reference.
      - Between V(1) and V(100).
    type: int
    default: 10
  wait:
    description:
      - Wait until the invalidation, new or found, has completed.
      - Ignored in check mode.
    type: bool
    default: false
  wait_timeout:
    description:
      - How many seconds to wait when O(wait=true).
    type: int
    default: 600
notes:
  - C(TooManyInvalidationsInProgress) and throttling errors are retried with jittered backoff.
  - If the distribution already has an invalidation with the same caller reference but other paths
    (C(InvalidationBatchAlreadyExists)), the module fails. The reference hashes the paths, so only something other
    than this module can have caused that; a different O(release_id) gives a new reference.
  - IAM permissions used are C(cloudfront:ListInvalidations), C(cloudfront:GetInvalidation) and
    C(cloudfront:CreateInvalidation), C(cloudfront:ListDistributions) with O(alias) or O(comment_contains), and
    C(cloudfront:GetDistribution) in check mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff lists the paths the invalidation holds; V(before) is empty when it would be created.
  idempotent:
    support: full
    details:
      - The same paths and O(release_id) give the same caller reference, and CloudFront does not create a second
        invalidation for it.
"""

EXAMPLES = r"""
- name: Invalidate the entry points of the release just published
  flora.deploy.cloudfront_invalidation:
    distribution_id: E2QWRUHAPOMQZL
    release_id: "{{ release_sha }}"
    paths:
      - /index.html
      - /service-worker.js
      - /manifest.webmanifest

- name: Find the distribution by its domain and wait for the invalidation
  flora.deploy.cloudfront_invalidation:
    alias: shop.flora.example
    release_id: "{{ release_sha }}"
    paths:
      - /index.html
      - /locales/*
    wait: true
    wait_timeout: 900
  register: frontend_invalidation

- name: Check the distribution with a dry run and read its default root object
  flora.deploy.cloudfront_invalidation:
    distribution_id: E2QWRUHAPOMQZL
    paths:
      - /index.html
  check_mode: true
  register: frontend_distribution

- name: Invalidate index.html, and / too when index.html is the default root object
  flora.deploy.cloudfront_invalidation:
    distribution_id: E2QWRUHAPOMQZL
    release_id: "{{ release_sha }}"
    default_root_object: "{{ frontend_distribution.distribution.default_root_object }}"
    paths:
      - /index.html

- name: Invalidate everything on the distribution whose comment mentions flora
  flora.deploy.cloudfront_invalidation:
    comment_contains: flora
    release_id: "{{ build_number }}"
    paths:
      - /*
"""

RETURN = r"""
distribution_id:
  description: The ID of the distribution, also when found by O(alias) or O(comment_contains).
  returned: always
  type: str
  sample: E2QWRUHAPOMQZL
invalidation_id:
  description:
    - The ID of the invalidation created or found.
    - V(null) in check mode when the invalidation would be created.
  returned: always
  type: str
  sample: I2J0I21PCUYOIK
status:
  description:
    - V(InProgress) or V(Completed); V(Completed) after waiting with O(wait=true).
    - V(null) in check mode when the invalidation would be created.
  returned: always
  type: str
  sample: InProgress
paths:
  description: The normalised paths the invalidation holds.
  returned: always
  type: list
  elements: str
  sample:
    - /index.html
    - /locales/*
    - /menu%20du%20jour.html
caller_reference:
  description: The caller reference, derived from RV(paths) and O(release_id).
  returned: always
  type: str
  sample: flora-3f1c2a9d0b7e4c65a8d1f0e2b3c4d5e6
collapsed:
  description:
    - Whether other paths were replaced by V(/*), because of CloudFront's limits or because V(/*) was among them.
  returned: always
  type: bool
  sample: false
distribution:
  description: What C(GetDistribution) said of the distribution.
  returned: in check mode
  type: dict
  version_added: 0.1.0
  contains:
    domain_name:
      description: The distribution's own domain name.
      type: str
      sample: d111111abcdef8.cloudfront.net
    aliases:
      description: Its alternate domain names (CNAMEs), in the order of its settings.
      type: list
      elements: str
      sample: ["shop.flora.example"]
    url:
      description:
        - Where visitors reach it, C(https://) and its first alias (a wildcard alias is skipped), else its own
          domain name.
      type: str
      sample: https://shop.flora.example
    default_root_object:
      description: Its default root object; empty when it has none.
      type: str
      sample: index.html
"""

try:
    import botocore.exceptions
except ImportError:
    pass  # caught by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.flora.deploy.plugins.module_utils.access_denied import DEPLOYER_STATEMENTS, denial_message
from ansible_collections.flora.deploy.plugins.module_utils.cloudfront_invalidation import (
    RETRY_ERROR_CODES,
    InvalidationError,
    ensure_invalidation,
    find_distribution_id,
    invalidation_diff,
)
from ansible_collections.flora.deploy.plugins.module_utils.module_exit import exit_json_without_final_collection

DISTRIBUTION_SELECTORS = ["distribution_id", "alias", "comment_contains"]


def main() -> None:
    argument_spec = {
        "distribution_id": {"type": "str"},
        "alias": {"type": "str"},
        "comment_contains": {"type": "str"},
        "paths": {"type": "list", "elements": "str", "required": True, "aliases": ["target_paths"]},
        "release_id": {"type": "str"},
        "default_root_object": {"type": "str"},
        "recent_invalidations": {"type": "int", "default": 10},
        "wait": {"type": "bool", "default": False},
        "wait_timeout": {"type": "int", "default": 600},
    }
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[DISTRIBUTION_SELECTORS],
        required_one_of=[DISTRIBUTION_SELECTORS],
    )
    params = module.params
    if not 1 <= params["recent_invalidations"] <= 100:
        module.fail_json(msg="recent_invalidations must be between 1 and 100")
    if params["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout must be at least 1 second")

    client = module.client(
        "cloudfront", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=RETRY_ERROR_CODES)
    )

    distribution_id = params["distribution_id"]
    try:
        if not distribution_id:
            distribution_id = find_distribution_id(
                client, alias=params["alias"], comment_contains=params["comment_contains"]
            )
        result = ensure_invalidation(
            client,
            distribution_id,
            params["paths"],
            release_id=params["release_id"],
            recent_limit=params["recent_invalidations"],
            wait=params["wait"],
            wait_timeout=params["wait_timeout"],
            check_mode=module.check_mode,
            default_root_object=params["default_root_object"],
        )
    except InvalidationError as e:
        module.fail_json(msg=str(e), **e.details)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        failure = (
            f"Failed to invalidate paths on CloudFront distribution {distribution_id}"
            if distribution_id
            else "Failed to list CloudFront distributions"
        )
        resource = f"CloudFront distribution {distribution_id}" if distribution_id else "the CloudFront distributions"
        explained = denial_message(module, e, resource, DEPLOYER_STATEMENTS)
        module.fail_json_aws(e, msg=f"{failure}: {explained}" if explained else failure)

    output = result.as_module_result()
    if module._diff:
        output["diff"] = invalidation_diff(result)
    exit_json_without_final_collection(module, **output)


if __name__ == "__main__":
    main()
