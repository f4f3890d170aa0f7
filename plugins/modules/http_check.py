# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_check
short_description: Read many URLs in parallel and check their status, headers and content
version_added: 0.1.0
description:
  - Sends a request (a GET unless O(urls[].method) says otherwise) to each URL of O(urls) on a bounded pool of
    threads and compares the answer with what is expected of it (status, C(Cache-Control), C(Content-Type),
    SHA-256 of the body).
  - Fails when any URL answers otherwise, with one line per URL naming what it answered and what was expected.
    One task for a whole site instead of one M(ansible.builtin.uri) task per file.
  - With O(retries), the URLs that failed are read again, O(delay) seconds apart, until they answer as expected.
    So one task waits for a service that is still starting and runs its smoke checks.
  - Redirects are not followed, so a redirect is reported as such.
author:
  - Flora platform team (@flora-marketplace)
options:
  urls:
    description: The URLs and what each must answer.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description: The URL.
        type: str
        required: true
      name:
        description: A name for the check, which leads its failure line.
        type: str
        version_added: 0.1.0
      method:
        description: The HTTP method.
        type: str
        default: GET
        version_added: 0.1.0
      body:
        description: The request body, sent as UTF-8.
        type: str
        version_added: 0.1.0
      headers:
        description: Request headers.
        type: dict
        default: {}
        version_added: 0.1.0
      status:
        description: The expected HTTP status.
        type: int
        default: 200
      cache_control:
        description: The expected C(Cache-Control) header; not checked when omitted.
        type: str
      content_type:
        description: The expected C(Content-Type) header; not checked when omitted.
        type: str
      sha256:
        description: The expected SHA-256 of the body (hex); not checked when omitted.
        type: str
  workers:
    description: How many requests run in parallel.
    type: int
    default: 8
  timeout:
    description: Seconds to wait for each answer.
    type: int
    default: 10
  retries:
    description: How many more times the URLs that failed are read before the module fails.
    type: int
    default: 0
    version_added: 0.1.0
  delay:
    description: Seconds between two rounds of O(retries).
    type: float
    default: 1
    version_added: 0.1.0
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode sends every request too, as given. Checks with a method other than GET are only as harmless
        in check mode as the request they make.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Check that the site serves every file index.html references
  flora.deploy.http_check:
    urls:
      - url: https://dzmu16crq41il.cloudfront.net/assets/index-3TWYBq9S.js
        cache_control: public,max-age=31536000,immutable
        content_type: text/javascript; charset=utf-8
      - url: https://dzmu16crq41il.cloudfront.net/flora-logo.png
        content_type: image/png

- name: Wait for the backend's health check, then check that the webhook route refuses an unsigned call
  flora.deploy.http_check:
    urls:
      - url: http://127.0.0.1:3001/api/health
      - name: Stripe webhook refuses an unsigned call
        url: http://127.0.0.1:3001/api/webhooks/stripe
        method: POST
        body: "{}"
        headers:
          Content-Type: application/json
        status: 400
    retries: 10
    delay: 2
"""

RETURN = r"""
checked:
  description: What each URL answered, in the order of O(urls).
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The URL.
      type: str
    status:
      description: The HTTP status; 0 when it did not answer.
      type: int
    cache_control:
      description: The C(Cache-Control) header.
      type: str
    content_type:
      description: The C(Content-Type) header.
      type: str
    sha256:
      description: SHA-256 of the body, when O(urls[].sha256) was given.
      type: str
    seconds:
      description: Time to the whole answer.
      type: float
    error:
      description: Why there was no answer.
      type: str
failures:
  description: One line per URL that did not answer as expected in the last round.
  returned: always
  type: list
  elements: str
attempts:
  description: How many rounds ran (1 when every URL answered as expected at once).
  returned: always
  type: int
  version_added: 0.1.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.http_check import Expectation, check_until, open_url_fetch


def main():
    module = AnsibleModule(
        argument_spec=dict(
            urls=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    url=dict(type="str", required=True),
                    name=dict(type="str"),
                    method=dict(type="str", default="GET"),
                    body=dict(type="str"),
                    headers=dict(type="dict", default={}),
                    status=dict(type="int", default=200),
                    cache_control=dict(type="str"),
                    content_type=dict(type="str"),
                    sha256=dict(type="str"),
                ),
            ),
            workers=dict(type="int", default=8),
            timeout=dict(type="int", default=10),
            retries=dict(type="int", default=0),
            delay=dict(type="float", default=1),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["workers"] < 1:
        module.fail_json(msg="workers must be at least 1")
    if params["retries"] < 0 or params["delay"] < 0:
        module.fail_json(msg="retries and delay must not be negative")

    fetch = open_url_fetch(params["timeout"], params["validate_certs"])
    expectations = [
        Expectation(
            url=item["url"],
            status=item["status"],
            cache_control=item["cache_control"],
            content_type=item["content_type"],
            sha256=item["sha256"].lower() if item["sha256"] else None,
            method=item["method"].upper(),
            body=item["body"].encode("utf-8") if item["body"] is not None else None,
            headers=item["headers"],
            name=item["name"],
        )
        for item in params["urls"]
    ]
    seen, failures, attempts = check_until(expectations, fetch, params["workers"], params["retries"], params["delay"])
    checked = [
        {
            "url": expected.url,
            "status": observed.status,
            "cache_control": observed.cache_control,
            "content_type": observed.content_type,
            "sha256": observed.sha256,
            "seconds": round(observed.seconds, 3),
            "error": observed.error,
        }
        for expected, observed in zip(expectations, seen)
    ]
    if failures:
        module.fail_json(msg="; ".join(failures), checked=checked, failures=failures, attempts=attempts)
    module.exit_json(changed=False, checked=checked, failures=[], attempts=attempts)


if __name__ == "__main__":
    main()
