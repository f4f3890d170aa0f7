"""A dev and a prod frontend side by side on one local AWS: each build reads its own environment's parameters, is
built for its own site, and goes to its own bucket and distribution."""

from __future__ import annotations

import json

from tests.integration.test_frontend_publish import (
    body,
    copy_app,
    invalidations,
    publish,
    referenced,
)
from tests.support import localaws

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
    for environment, (bucket, distribution_id) in sites.items():
        app = copy_app(tmp_path / environment)
        result = publish(
            run_playbook,
            tmp_path,
            {
                "flora_environment": environment,
                "frontend_publish_app_dir": str(app),
                "frontend_publish_bucket": bucket,
                "frontend_publish_distribution_id": distribution_id,
                "flora_aws_endpoint_url": aws,
            },
        )[0]
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
