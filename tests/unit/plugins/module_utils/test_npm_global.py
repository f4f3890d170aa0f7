from __future__ import annotations

import json

from ansible_collections.flora.deploy.plugins.module_utils.npm_global import installed_version, package_dir


def test_the_version_comes_from_the_package_json_under_the_prefix(tmp_path):
    directory = tmp_path / "lib" / "node_modules" / "pm2"
    directory.mkdir(parents=True)
    (directory / "package.json").write_text(json.dumps({"name": "pm2", "version": "6.0.14"}))
    assert package_dir(str(tmp_path), "pm2") == str(directory)
    assert installed_version(str(tmp_path), "pm2") == "6.0.14"


def test_a_missing_or_unreadable_package_reads_as_not_installed(tmp_path):
    assert installed_version(str(tmp_path), "pnpm") == ""
    directory = tmp_path / "lib" / "node_modules" / "pnpm"
    directory.mkdir(parents=True)
    (directory / "package.json").write_text("{not json")
    assert installed_version(str(tmp_path), "pnpm") == ""
    (directory / "package.json").write_text(json.dumps(["pnpm"]))
    assert installed_version(str(tmp_path), "pnpm") == ""
    (directory / "package.json").write_text(json.dumps({"version": 10}))
    assert installed_version(str(tmp_path), "pnpm") == ""
