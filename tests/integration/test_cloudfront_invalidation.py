"""flora.deploy.cloudfront_invalidation through ansible-playbook against the moto server, as the deployer (CI or
AWX) with the policy the collection renders for the distribution, while the server authorizes every request."""

from __future__ import annotations

import json

from tests.support import identities, localaws

PLAYBOOK = "cloudfront_invalidation/invalidate.yml"

# As a deploy would list them: unencoded, unsorted, a duplicate spelling and a path a wildcard covers.
PATHS = ["index.html", "/menu du jour.html", "/café/crème.png", "/assets/*", "/assets/app.js", "/index.html"]
EXPECTED_PATHS = ["/assets/*", "/caf%C3%A9/cr%C3%A8me.png", "/index.html", "/menu%20du%20jour.html"]


def deployer(endpoint: str, distribution_id: str, lookup: bool = False) -> identities.Identity:
    """The deployer whose policy names the distribution, and with ``lookup`` lets it list the account's
    distributions to find it by alias or comment (iam_policies_distribution_lookup). The module's target names
    the distribution invalidation_distribution_id, not the role variable run_playbook(identity="deployer") reads."""
    return identities.production_identities(
        endpoint, distribution_id=distribution_id, distribution_lookup=lookup
    ).deployer


def invalidations(endpoint: str, distribution_id: str) -> list[dict]:
    """Every invalidation of the distribution, in full, oldest first."""
    cloudfront = localaws.boto3_client("cloudfront", endpoint)
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    return [
        cloudfront.get_invalidation(DistributionId=distribution_id, Id=item["Id"])["Invalidation"]
        for item in listed.get("Items") or []
    ]


def batch(invalidation: dict) -> tuple[str, list[str]]:
    return invalidation["InvalidationBatch"]["CallerReference"], invalidation["InvalidationBatch"]["Paths"]["Items"]


def saved_result(tmp_path, name: str = "result.json") -> dict:
    return json.loads((tmp_path / name).read_text())


def test_check_mode_reports_the_change_and_creates_nothing(aws, run_playbook, tmp_path):
    distribution_id = localaws.create_site(aws, "flora-check-mode")
    variables = {"invalidation_distribution_id": distribution_id, "invalidation_paths": PATHS}

    result = run_playbook(PLAYBOOK, variables, "--check", "--diff", identity=deployer(aws, distribution_id))

    assert result.rc == 0, result
    assert invalidations(aws, distribution_id) == []
    check = saved_result(tmp_path)
    assert check["changed"] is True
    assert check["invalidation_id"] is None
    assert check["status"] is None
    assert check["paths"] == EXPECTED_PATHS
    assert check["caller_reference"].startswith("flora-")
    assert check["diff"]["before"] == {"paths": []}
    assert check["diff"]["after"] == {"paths": EXPECTED_PATHS}
    header = f"CloudFront distribution {distribution_id}, caller reference {check['caller_reference']}"
    assert f"--- before: {header}" in result.output
    assert '+        "/menu%20du%20jour.html"' in result.output


def test_create_repeat_and_new_release(aws, run_playbook, tmp_path):
    distribution_id = localaws.create_site(aws, "flora-idempotence")
    variables = {"invalidation_distribution_id": distribution_id, "invalidation_paths": PATHS}

    result = run_playbook("cloudfront_invalidation/idempotence.yml", variables, identity=deployer(aws, distribution_id))

    assert result.rc == 0, result
    runs = saved_result(tmp_path, "idempotence.json")
    assert [runs[name]["changed"] for name in ("check_1", "create_1", "create_2", "check_2", "release_2")] == [
        True,
        True,
        False,
        False,
        True,
    ]
    created = invalidations(aws, distribution_id)
    # Two releases, two invalidations: neither check mode nor the repeated run created one.
    assert [invalidation["Id"] for invalidation in created] == [
        runs["create_1"]["invalidation_id"],
        runs["release_2"]["invalidation_id"],
    ]
    assert [batch(invalidation) for invalidation in created] == [
        (runs["create_1"]["caller_reference"], EXPECTED_PATHS),
        (runs["release_2"]["caller_reference"], EXPECTED_PATHS),
    ]
    assert runs["create_2"]["invalidation_id"] == runs["create_1"]["invalidation_id"]
    assert runs["create_1"]["distribution_id"] == distribution_id
    assert runs["create_1"]["collapsed"] is False


def test_check_mode_reads_the_distribution_and_its_root_object_brings_the_root_along(aws, run_playbook, tmp_path):
    distribution_id = localaws.create_site(aws, "flora-root")  # default root object index.html
    variables = {"invalidation_distribution_id": distribution_id, "invalidation_paths": ["/index.html"]}

    as_deployer = deployer(aws, distribution_id)
    check = run_playbook(PLAYBOOK, variables, "--check", identity=as_deployer)
    assert check.rc == 0, check
    dry_run = saved_result(tmp_path)
    domain_name = localaws.boto3_client("cloudfront", aws).get_distribution(Id=distribution_id)["Distribution"][
        "DomainName"
    ]
    assert dry_run["distribution"] == {
        "domain_name": domain_name,
        "aliases": ["flora-root.flora.example"],
        "url": "https://flora-root.flora.example",
        "default_root_object": "index.html",
    }
    assert dry_run["paths"] == ["/index.html"]

    root_object = dry_run["distribution"]["default_root_object"]
    result = run_playbook(
        PLAYBOOK, {**variables, "invalidation_default_root_object": root_object}, identity=as_deployer
    )
    assert result.rc == 0, result
    created = saved_result(tmp_path)
    assert created["paths"] == ["/", "/index.html"]
    assert "distribution" not in created
    assert [batch(invalidation)[1] for invalidation in invalidations(aws, distribution_id)] == [["/", "/index.html"]]

    # A change without the root object (a logo) leaves / alone.
    logo = {"invalidation_paths": ["/flora-logo.png"], "invalidation_default_root_object": root_object}
    result = run_playbook(PLAYBOOK, {**variables, **logo}, identity=as_deployer)
    assert result.rc == 0, result
    assert saved_result(tmp_path)["paths"] == ["/flora-logo.png"]
    assert sorted(batch(invalidation)[1] for invalidation in invalidations(aws, distribution_id)) == [
        ["/", "/index.html"],
        ["/flora-logo.png"],
    ]


def test_distribution_found_by_alias(aws, run_playbook, tmp_path):
    wanted = localaws.create_site(aws, "flora-shop-prod", "flora frontend (prod)")
    other = localaws.create_site(aws, "flora-shop-staging", "flora frontend (staging)")
    variables = {"invalidation_alias": "flora-shop-prod.flora.example", "invalidation_paths": ["/index.html"]}

    # Finding the distribution by alias lists every distribution: the deployer of a setup that names it so has
    # iam_policies_distribution_lookup, and may still invalidate the wanted one only.
    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, wanted, lookup=True))

    assert result.rc == 0, result
    assert saved_result(tmp_path)["distribution_id"] == wanted
    assert [batch(invalidation)[1] for invalidation in invalidations(aws, wanted)] == [["/index.html"]]
    assert invalidations(aws, other) == []


def test_distribution_found_by_comment(aws, run_playbook, tmp_path):
    other = localaws.create_site(aws, "flora-marketing", "marketing site")
    wanted = localaws.create_site(aws, "flora-shop", "flora frontend (prod)")
    variables = {"invalidation_comment_contains": "flora", "invalidation_paths": ["/index.html"]}

    # By comment, as by alias: the deployer with iam_policies_distribution_lookup.
    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, wanted, lookup=True))

    assert result.rc == 0, result
    assert saved_result(tmp_path)["distribution_id"] == wanted
    assert len(invalidations(aws, wanted)) == 1
    assert invalidations(aws, other) == []


def test_ambiguous_comment_fails_listing_the_distributions(aws, run_playbook):
    prod = localaws.create_site(aws, "flora-shop-prod", "flora frontend (prod)")
    staging = localaws.create_site(aws, "flora-shop-staging", "flora frontend (staging)")
    variables = {"invalidation_comment_contains": "flora", "invalidation_paths": ["/index.html"]}

    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, prod, lookup=True))

    assert result.rc == 2, result
    ids = ", ".join(sorted([prod, staging]))
    assert f"2 CloudFront distributions have a comment containing 'flora': {ids}" in result.output
    assert invalidations(aws, prod) == invalidations(aws, staging) == []


def test_no_distribution_with_the_comment_fails(aws, run_playbook):
    shop = localaws.create_site(aws, "flora-shop", "flora frontend (prod)")
    variables = {"invalidation_comment_contains": "bakery", "invalidation_paths": ["/index.html"]}

    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, shop, lookup=True))

    assert result.rc == 2, result
    assert "No CloudFront distribution has a comment containing 'bakery'" in result.output


def test_unknown_distribution_id_fails(aws, run_playbook):
    localaws.create_site(aws, "flora-shop")
    variables = {"invalidation_distribution_id": "E0000000000000", "invalidation_paths": ["/index.html"]}

    # The deployer's policy names the distribution (since deleted): one naming another would be denied first.
    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, "E0000000000000"))

    assert result.rc == 2, result
    assert "CloudFront distribution E0000000000000 does not exist" in result.output


def test_sixteen_wildcards_collapse_to_everything(aws, run_playbook, tmp_path):
    distribution_id = localaws.create_site(aws, "flora-collapse")
    wildcards = [f"/locales/{n:02d}/*" for n in range(16)]
    variables = {"invalidation_distribution_id": distribution_id, "invalidation_paths": wildcards}

    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, distribution_id))

    assert result.rc == 0, result
    collapsed = saved_result(tmp_path)
    assert (collapsed["collapsed"], collapsed["paths"]) == (True, ["/*"])
    assert [batch(invalidation)[1] for invalidation in invalidations(aws, distribution_id)] == [["/*"]]


def test_fifteen_wildcards_are_kept(aws, run_playbook, tmp_path):
    distribution_id = localaws.create_site(aws, "flora-no-collapse")
    wildcards = [f"/locales/{n:02d}/*" for n in range(15)]
    variables = {"invalidation_distribution_id": distribution_id, "invalidation_paths": wildcards}

    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, distribution_id))

    assert result.rc == 0, result
    assert saved_result(tmp_path)["collapsed"] is False
    assert [batch(invalidation)[1] for invalidation in invalidations(aws, distribution_id)] == [wildcards]


def test_wait_returns_completed(aws, run_playbook, tmp_path):
    distribution_id = localaws.create_site(aws, "flora-wait")
    variables = {
        "invalidation_distribution_id": distribution_id,
        "invalidation_paths": ["/index.html"],
        "invalidation_release_id": "release-1",
        "invalidation_wait": True,
        "invalidation_wait_timeout": 5,
    }

    result = run_playbook(PLAYBOOK, variables, identity=deployer(aws, distribution_id))

    assert result.rc == 0, result
    waited = saved_result(tmp_path)
    assert waited["status"] == "Completed"
    assert [invalidation["Id"] for invalidation in invalidations(aws, distribution_id)] == [waited["invalidation_id"]]
