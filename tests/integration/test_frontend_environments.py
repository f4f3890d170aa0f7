"""A dev and a prod frontend side by side on one local AWS: each build reads its own environment's parameters, is
built for its own site, and goes to its own bucket and distribution. Each environment publishes as its own
deployer, whose policy names that environment's bucket, distribution and parameters only."""

from __future__ import annotations

import json

from tests.integration.test_frontend_publish import (
    PUBLISH,
    body,
    copy_app,
    invalidations,
    publish,
    referenced,
)
from tests.support import identities, localaws

ENVIRONMENTS = ("dev", "prod")


def test_dev_and_prod_side_by_side(aws, run_playbook, tmp_path):
    ssm = localaws.boto3_client("ssm", aws)
    s3 = localaws.boto3_client("s3", aws)
    sites = {}
    for environment in ENVIRONMENTS:
        bucket = f"flora-frontend-{environment}"
        sites[environment] = (bucket, localaws.create_site(aws, bucket, comment=f"flora frontend ({environment})"))
        localaws.seed_flora_parameters(aws, prefix=f"/flora/{environment}")
    ssm.put_parameter(Name="/flora/dev/auth0_domain", Value="flora-dev.au.auth0.com", Type="String", Overwrite=True)

    builds = {}
    variables = {}
    for environment, (bucket, distribution_id) in sites.items():
        app = copy_app(tmp_path / environment)
        variables[environment] = {
            "flora_environment": environment,
            "frontend_publish_app_dir": str(app),
            "frontend_publish_bucket": bucket,
            "frontend_publish_distribution_id": distribution_id,
            "flora_aws_endpoint_url": aws,
        }
        # As the deployer of flora_environment, with the policy rendered for this environment's bucket and
        # distribution (and its parameters, /flora/<environment>/...): reading the other's would be denied.
        result = publish(run_playbook, tmp_path, variables[environment], identity="deployer")[0]
        builds[environment] = (app, result)

    for environment, (bucket, distribution_id) in sites.items():
        other = next(name for name in ENVIRONMENTS if name != environment)
        app, result = builds[environment]
        # Built for its own site (the distribution's alias), with its own environment's parameters.
        env = (app / "apps" / "frontend" / ".env").read_text().splitlines()
        assert f"VITE_API_URL='https://flora-frontend-{environment}.flora.example/api'" in env
        auth0 = "flora-dev.au.auth0.com" if environment == "dev" else "flora-demo.au.auth0.com"
        assert f"VITE_AUTH0_DOMAIN='{auth0}'" in env
        # The bundle in its bucket calls its own API and not the other's.
        index = body(s3, "index.html", bucket)
        script = next(path for path in referenced(index) if path.endswith(".js"))
        bundle = body(s3, script, bucket)
        assert f"https://flora-frontend-{environment}.flora.example/api".encode() in bundle
        assert f"flora-frontend-{other}".encode() not in bundle
        # Its own distribution was invalidated, once.
        assert result["invalidation"]["distribution_id"] == distribution_id
        assert len(invalidations(aws, distribution_id)) == 1
        manifests = s3.list_objects_v2(Bucket=bucket, Prefix=".publish/manifests/")["Contents"]
        assert len(manifests) == 1
        manifest = json.loads(body(s3, manifests[0]["Key"], bucket))
        assert manifest["source"]["env_checksum"] == result["publish"]["source"]["env_checksum"]
    assert (
        builds["dev"][1]["publish"]["source"]["env_checksum"] != builds["prod"][1]["publish"]["source"]["env_checksum"]
    )

    # Cross-talk is denied: dev's deployer publishing prod's build to prod's bucket and distribution is refused,
    # and prod's site is as its own deployer left it.
    dev_bucket, dev_distribution = sites["dev"]
    prod_bucket, prod_distribution = sites["prod"]
    dev_deployer = identities.production_identities(
        aws, "dev", frontend_bucket=dev_bucket, distribution_id=dev_distribution
    ).deployer
    prod_app = builds["prod"][0]
    before = {item["Key"]: item["ETag"] for item in s3.list_objects_v2(Bucket=prod_bucket)["Contents"]}
    crossed = run_playbook(
        PUBLISH,
        {
            **variables["prod"],
            "frontend_publish_build": False,
            "frontend_publish_build_dir": str(prod_app / "apps" / "frontend" / "dist"),
        },
        identity=dev_deployer,
    )
    assert crossed.rc != 0, crossed
    assert f"{dev_deployer.arn} may not s3:ListBucket on arn:aws:s3:::{prod_bucket}" in crossed.output, crossed
    assert {item["Key"]: item["ETag"] for item in s3.list_objects_v2(Bucket=prod_bucket)["Contents"]} == before
    assert len(invalidations(aws, prod_distribution)) == 1
