# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redeploy's health and smoke checks, run on the host by the reload step right after the reload.

  check_release.py <http_check.py> <checks JSON>

<http_check.py> is flora.deploy's plugins/module_utils/http_check.py, the logic of flora.deploy.http_check, which
needs only the standard library; <checks JSON> is {"urls": [...], "retries": N, "delay": S, "timeout": S}, each URL
with the keys of flora.deploy.http_check's urls. Prints one line per check; exit 4 when a check still fails after
the retries, with the failures on standard error.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.error
import urllib.request

EXIT_CHECK_FAILED = 4


def load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up while the class is made.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to report, as flora.deploy.http_check does, not one to follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def main(argv: list[str]) -> int:
    http_check = load(argv[0], "flora_http_check")
    checks = json.loads(argv[1])
    opener = urllib.request.build_opener(NoRedirects)

    def fetch(expected):
        request = urllib.request.Request(
            expected.url, data=expected.body, headers=dict(expected.headers), method=expected.method
        )
        request.add_header("User-Agent", "flora.deploy.backend_redeploy")
        try:
            with opener.open(request, timeout=checks.get("timeout", 10)) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers or {}), e.read()

    expectations = [
        http_check.Expectation(
            url=item["url"],
            status=int(item.get("status") or 200),
            method=(item.get("method") or "GET").upper(),
            body=item["body"].encode("utf-8") if item.get("body") is not None else None,
            headers=item.get("headers") or {},
            name=item.get("name"),
        )
        for item in checks["urls"]
    ]
    seen, failures, attempts = http_check.check_until(
        expectations, fetch, workers=8, retries=int(checks.get("retries", 0)), delay=float(checks.get("delay", 1))
    )
    for expected, observed in zip(expectations, seen):
        print(f"{expected.name or expected.url}: {observed.status or observed.error} in {observed.seconds:.3f} s")
    if failures:
        print(f"checks failed after {attempts} round(s): " + "; ".join(failures), file=sys.stderr)
        return EXIT_CHECK_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
