"""roles/awx_configure: the job templates and surveys it sends to AWX.

No AWX server runs here; the survey specs are rendered with the role's own defaults and template, and checked
against the playbooks and role variables they must drive.
"""

from __future__ import annotations

import json

import yaml

from tests.integration.conftest import REPO

SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def declared_variables() -> set[str]:
    """Every variable a role declares in its argument specs, and the ones the playbooks read themselves."""
    names = {"flora_environment"}
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names.update(entry.get("options", {}))
    return names


def test_every_job_template_runs_a_playbook_with_a_survey_for_ref_and_environment(run_playbook, tmp_path):
    settings = {
        "awx_configure_app_repo_url": "https://git.example.com/Flora.git",
        "awx_configure_environments": ["prod", "staging"],
    }
    result = run_playbook("awx_configure/surveys.yml", settings)
    assert result.rc == 0, result
    templates = json.loads((tmp_path / "result.json").read_text())
    assert {t["playbook"] for t in templates} == {
        "playbooks/deploy.yml",
        "playbooks/redeploy_backend.yml",
        "playbooks/rollback_backend.yml",
        "playbooks/publish_frontend.yml",
        "playbooks/rollback_frontend.yml",
        "playbooks/restore_database.yml",
        "playbooks/bootstrap_ec2.yml",
    }
    declared = declared_variables()
    for template in templates:
        assert (REPO / template["playbook"]).is_file()
        assert template["extra_vars"]["app_checkout_repo_url"] == "https://git.example.com/Flora.git"
        spec = template["survey_spec"]
        assert spec["name"] == template["name"]
        questions = {q["variable"]: q for q in spec["spec"]}
        for question in spec["spec"]:
            assert question["type"] in SURVEY_TYPES
            assert question["question_name"]
            assert question["variable"] in declared, f"{template['name']}: {question['variable']} drives nothing"
        environment = questions["flora_environment"]
        assert environment["choices"] == ["prod", "staging"] and environment["default"] == "prod"
        refs = [name for name in questions if name != "flora_environment"]
        if template["playbook"].endswith("restore_database.yml"):
            # Nothing is restored without the database's name; the backup is the newest unless a release is named.
            assert refs == ["database_restore_release", "database_restore_confirm"]
            assert questions["database_restore_confirm"]["required"] is True
            assert questions["database_restore_release"]["required"] is False
        else:
            assert len(refs) == 1, template["name"]
    for playbook, variable in (
        ("rollback_backend.yml", "backend_redeploy_rollback_to"),
        ("rollback_frontend.yml", "frontend_publish_rollback_to"),
    ):
        rollback = next(t for t in templates if t["playbook"].endswith(playbook))
        question = rollback["survey_spec"]["spec"][0]
        assert question["variable"] == variable
        assert question["required"] is False and question["default"] == ""


def test_the_environment_question_reaches_the_parameter_store_paths():
    for role, variable in (("app_env", "app_env_environment"), ("frontend_publish", "frontend_publish_environment")):
        defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
        assert "flora_environment" in defaults[variable]
