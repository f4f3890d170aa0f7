"""meta/runtime.yml's aws action group holds every AWS module the collection's roles and playbooks call.

A module missing from it would not get a play's module_defaults for group/flora.deploy.aws (region, endpoint,
credentials), and would call AWS with whatever the environment says instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
AWS_MODULE = re.compile(r"^(amazon|community)\.aws\.\w+$")


def group_members() -> set[str]:
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    members = {m for m in runtime["action_groups"]["aws"] if isinstance(m, str)}
    return {m if "." in m else f"flora.deploy.{m}" for m in members}


def task_actions(node) -> set[str]:
    """Every key that names an amazon.aws or community.aws module, anywhere in a tasks or playbook file."""
    found = set()
    if isinstance(node, dict):
        found.update(key for key in node if isinstance(key, str) and AWS_MODULE.match(key))
        for value in node.values():
            found |= task_actions(value)
    elif isinstance(node, list):
        for item in node:
            found |= task_actions(item)
    return found


def called_aws_modules() -> dict[str, list[str]]:
    files = sorted(REPO.glob("roles/*/tasks/*.yml")) + sorted(REPO.glob("roles/*/handlers/*.yml"))
    files += sorted(REPO.glob("playbooks/*.yml"))
    calls: dict[str, list[str]] = {}
    for path in files:
        for action in task_actions(yaml.safe_load(path.read_text())):
            calls.setdefault(action, []).append(str(path.relative_to(REPO)))
    return calls


def test_the_group_holds_every_aws_module_the_roles_and_playbooks_call():
    calls = called_aws_modules()
    # The roles do call modules of both collections: a scan that finds none would prove nothing.
    assert {action.split(".")[0] for action in calls} == {"amazon", "community"}
    missing = {action: where for action, where in calls.items() if action not in group_members()}
    assert missing == {}


def test_the_group_holds_every_aws_module_of_the_collection():
    aws_modules = {
        f"flora.deploy.{path.stem}"
        for path in (REPO / "plugins" / "modules").glob("*.py")
        if "AnsibleAWSModule(" in path.read_text()
    }
    assert "flora.deploy.ssm_env" in aws_modules
    assert aws_modules <= group_members()


def test_the_group_holds_nothing_else():
    # Each member costs every play that uses the group a lookup; a member nothing calls is a stale entry.
    calls = set(called_aws_modules())
    own = {m for m in group_members() if m.startswith("flora.deploy.")}
    assert group_members() - own == calls
