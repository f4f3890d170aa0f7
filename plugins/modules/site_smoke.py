# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: site_smoke
short_description: Load the site in headless Chromium and fail on what a visitor would meet
version_added: 0.1.0
description:
  - Loads O(url) and each of O(deep_links) in headless Chromium (the distribution's C(chromium) package; nothing
    is downloaded), talking to it over the DevTools protocol on a pipe.
  - Fails when any request the page makes fails (4xx, 5xx or a network error), when the page logs a console error
    or throws, when the document served is not the C(index.html) just published (O(index_sha256) or the one in
    O(build_dir)), which catches a missing or unfinished CDN invalidation and a deep link without the SPA fallback,
    or when an API call made from the page, through the site's own origin, does not answer as expected.
  - Returns what it saw, and a screenshot of each failing page.
  - Without a browser it is skipped with a message, unless O(required=true).
  - Runs on the controller; it changes nothing.
author:
  - Flora platform team (@flora-marketplace)
options:
  url:
    description: The site URL, for example the CloudFront URL.
    type: str
    required: true
  deep_links:
    description:
      - Paths loaded as well, for example V(/order-confirmation/123). A single-page app answers them with its
        C(index.html), so they are checked against the same document.
    type: list
    elements: str
    default: []
  index_sha256:
    description: SHA-256 (hex) of the C(index.html) every page must be served.
    type: str
  build_dir:
    description: The published build directory; its C(index.html) gives O(index_sha256).
    type: path
  api_checks:
    description: Requests made from the loaded page with C(fetch), so through the site's origin, and the status each must answer.
    type: list
    elements: dict
    default: [{path: /api/health, status: 200}]
    suboptions:
      path:
        description: The path (or URL) to fetch.
        type: str
        required: true
      status:
        description: The expected status.
        type: int
        default: 200
  browser:
    description: The browser executable (a path or a name on PATH); default the first of C(chromium), C(chromium-browser), C(google-chrome).
    type: str
  required:
    description: Fail instead of skipping when no browser is installed.
    type: bool
    default: false
  timeout:
    description: Seconds a page may take to load, and the browser to answer.
    type: int
    default: 30
  screenshot_dir:
    description: Where screenshots of failing pages go; default a new temporary directory.
    type: path
extends_documentation_fragment:
  - flora.deploy.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - Chromium runs with C(--no-sandbox), as it must when the controller runs as root (CI, execution environments).
"""

EXAMPLES = r"""
- name: Load the site and a deep link, check the API through the same origin
  flora.deploy.site_smoke:
    url: https://dzmu16crq41il.cloudfront.net
    build_dir: /srv/Flora/apps/frontend/dist
    deep_links:
      - /order-confirmation/123
"""

RETURN = r"""
pages:
  description: One entry per page loaded.
  returned: unless skipped
  type: list
  elements: dict
  contains:
    url:
      description: The page.
      type: str
    requests:
      description: Every request the page made, with its status (or error).
      type: list
      elements: dict
    failures:
      description: What went wrong on this page.
      type: list
      elements: str
    document_sha256:
      description: SHA-256 of the document the page was served.
      type: str
    seconds:
      description: Time to load and check the page.
      type: float
    screenshot:
      description: A PNG of the page when it failed.
      type: str
failures:
  description: Every failure, prefixed with its page.
  returned: always
  type: list
  elements: str
browser:
  description: The browser's product and version.
  returned: unless skipped
  type: str
  sample: Chrome/156.0.8078.108
skipped:
  description: Whether the check was skipped for want of a browser.
  returned: always
  type: bool
"""

import hashlib
import os
import tempfile
from urllib.parse import urljoin

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.flora.deploy.plugins.module_utils.site_smoke import (
    BROWSER_NAMES,
    Browser,
    BrowserError,
    find_browser,
    load_page,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            deep_links=dict(type="list", elements="str", default=[]),
            index_sha256=dict(type="str"),
            build_dir=dict(type="path"),
            api_checks=dict(
                type="list",
                elements="dict",
                default=[{"path": "/api/health", "status": 200}],
                options=dict(path=dict(type="str", required=True), status=dict(type="int", default=200)),
            ),
            browser=dict(type="str"),
            required=dict(type="bool", default=False),
            timeout=dict(type="int", default=30),
            screenshot_dir=dict(type="path"),
        ),
        mutually_exclusive=[["index_sha256", "build_dir"]],
        supports_check_mode=True,
    )
    params = module.params
    expected = params["index_sha256"].lower() if params["index_sha256"] else None
    if params["build_dir"]:
        index = os.path.join(params["build_dir"], "index.html")
        try:
            with open(index, "rb") as handle:
                expected = hashlib.sha256(handle.read()).hexdigest()
        except OSError as e:
            module.fail_json(msg=f"Cannot read {index}: {e}")

    executable = find_browser(params["browser"])
    if executable is None:
        wanted = params["browser"] or " or ".join(BROWSER_NAMES)
        msg = f"No browser found ({wanted}); install Debian's chromium package to run the site smoke test"
        if params["required"]:
            module.fail_json(msg=msg, failures=[msg], skipped=False)
        module.exit_json(changed=False, skipped=True, msg=msg + ". Skipped.", failures=[])

    site = params["url"].rstrip("/") + "/"
    urls = [site] + [urljoin(site, link.lstrip("/")) for link in params["deep_links"]]
    shots = {"dir": params["screenshot_dir"]}

    def screenshot_path_for(number):
        def path():
            if shots["dir"] is None:
                shots["dir"] = tempfile.mkdtemp(prefix="flora-site-smoke-")
            os.makedirs(shots["dir"], exist_ok=True)
            return os.path.join(shots["dir"], f"page-{number}.png")

        return path

    browser = None
    pages = []
    try:
        browser = Browser(executable, timeout=params["timeout"])
        version = browser.send("Browser.getVersion").get("product")
        for number, url in enumerate(urls):
            pages.append(
                load_page(
                    browser,
                    url,
                    timeout=params["timeout"],
                    api_checks=params["api_checks"] if number == 0 else [],
                    expected_sha256=expected,
                    screenshot_path=screenshot_path_for(number),
                )
            )
    except BrowserError as e:
        module.fail_json(msg=f"The browser ({executable}) failed: {e}", pages=[p.to_dict() for p in pages])
    finally:
        if browser is not None:
            browser.close()

    failures = [f"{page.url}: {failure}" for page in pages for failure in page.failures]
    result = dict(
        changed=False,
        skipped=False,
        browser=version,
        pages=[page.to_dict() for page in pages],
        failures=failures,
    )
    if failures:
        module.fail_json(msg="The site smoke test failed: " + "; ".join(failures), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
