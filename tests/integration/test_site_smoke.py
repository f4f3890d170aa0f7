"""flora.deploy.site_smoke without a browser: skipped with a message, or failing when the browser is required.
The browser itself is tested against the whole local stack in tests/hosts/test_site.py."""

from __future__ import annotations

import json

import pytest

CHECK = "site_smoke/check.yml"


@pytest.mark.parametrize("required", [False, True])
def test_no_browser_skips_with_a_message_unless_required(run_playbook, tmp_path, required):
    args = {"url": "http://127.0.0.1:9/", "browser": "/nonexistent/chromium", "required": required}
    run = run_playbook(CHECK, {"smoke_args": args})
    assert run.rc == 0, run
    result = json.loads((tmp_path / "result.json").read_text())
    assert "No browser found (/nonexistent/chromium)" in result["msg"]
    assert result.get("failed", False) is required
    assert result["skipped"] is False if required else result["skipped"] is True
