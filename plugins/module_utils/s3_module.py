# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the modules that write a published build (s3_publish, s3_rollback) share: option checks, the S3 client,
how read errors are reported, carrying out a plan, and the site around the bucket: the CloudFront distribution,
checked before anything is written and invalidated after, and the read-back of what was written."""

from __future__ import annotations

import concurrent.futures
import contextlib
import typing as t

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # caught by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.flora.deploy.plugins.module_utils import cloudfront_invalidation as cloudfront
from ansible_collections.flora.deploy.plugins.module_utils.access_denied import (
    DEPLOYER_STATEMENTS,
    Denial,
    caller_arn,
    denial_message,
    explain,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    RETRY_ERROR_CODES,
    DeleteDenied,
    PublishError,
    PublishPlan,
    execute_plan,
    upload_arguments,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_verify import expected_objects, verify_objects

DISTRIBUTION_SELECTORS = ["distribution_id", "distribution_alias", "distribution_comment"]
# Argument spec of the site options: the distribution in front of the bucket, and the read-back.
SITE_ARGUMENT_SPEC = {
    "distribution_id": {"type": "str"},
    "distribution_alias": {"type": "str"},
    "distribution_comment": {"type": "str"},
    "invalidate_all": {"type": "bool", "default": False},
    "invalidation_extra_paths": {"type": "list", "elements": "str", "default": []},
    "invalidation_wait": {"type": "bool", "default": False},
    "invalidation_wait_timeout": {"type": "int", "default": 600},
    "verify": {"type": "bool", "default": False},
}


class Distribution(t.NamedTuple):
    client: t.Any
    distribution_id: str
    # What GetDistribution says of it (cloudfront_invalidation.describe_distribution).
    described: dict[str, t.Any]


def check_write_options(module: t.Any) -> None:
    params = module.params
    if params["workers"] < 1:
        module.fail_json(msg="workers must be at least 1")
    if params["keep_previous"] < 0:
        module.fail_json(msg="keep_previous must not be negative")
    if params["encryption_kms_key_id"] and params["encryption"] != "aws:kms":
        module.fail_json(msg="encryption_kms_key_id needs encryption=aws:kms")


def s3_client(module: t.Any) -> t.Any:
    """A client with a connection for each of the module's workers: botocore keeps 10 open by default, and a worker
    without one opens a new connection for every request."""
    return module.client(
        "s3",
        retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=RETRY_ERROR_CODES),
        config={"max_pool_connections": module.params["workers"]},
    )


def objects_arn(location: str) -> str:
    """The ARN of the objects under an s3://bucket/prefix location."""
    return "arn:aws:s3:::" + location.removeprefix("s3://") + "*"


def with_denial(module: t.Any, error: t.Any, message: str, resource: str) -> str:
    """message, followed by what the caller may not do and the statement that allows it when AWS refused it."""
    explained = denial_message(module, error, resource, DEPLOYER_STATEMENTS)
    return f"{message}: {explained}" if explained else message


@contextlib.contextmanager
def reading(module: t.Any, bucket: str, location: str) -> t.Iterator[None]:
    """Fail the module with a message naming the bucket or location when reading them fails."""
    try:
        yield
    except is_boto3_error_code("NoSuchBucket") as e:
        module.fail_json_aws(e, msg=f"Bucket {bucket} does not exist")
    except is_boto3_error_code(["AccessDenied", "403"]) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=with_denial(module, e, f"Access denied reading {location}", objects_arn(location)))
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read {location}")
    except PublishError as e:
        module.fail_json(msg=str(e))


def carry_out(module: t.Any, client: t.Any, plan: PublishPlan, failure: str) -> None:
    """The plan's writes, unless there are none or this is check mode; failure says what failed."""
    if not plan.changed or module.check_mode:
        return
    params = module.params
    extra = upload_arguments(params["acl"], params["encryption"], params["encryption_kms_key_id"])
    try:
        execute_plan(client, params["bucket"], plan, extra, params["workers"])
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(
            e, msg=with_denial(module, e, failure, objects_arn(f"s3://{params['bucket']}/{plan.prefix}"))
        )
    except DeleteDenied as e:
        denial = Denial("s3:DeleteObject", f"arn:aws:s3:::{e.bucket}/{e.key}")
        module.fail_json(msg=f"{e}: {explain(denial, DEPLOYER_STATEMENTS, caller_arn(module))}")
    except PublishError as e:
        module.fail_json(msg=str(e))


class PendingDistribution(t.NamedTuple):
    client: t.Any
    selected: str
    future: concurrent.futures.Future


def fetch_distribution(client: t.Any, params: t.Mapping[str, t.Any]) -> tuple[str, dict[str, t.Any]]:
    distribution_id = params["distribution_id"]
    if not distribution_id:
        distribution_id = cloudfront.find_distribution_id(
            client, alias=params["distribution_alias"], comment_contains=params["distribution_comment"]
        )
    return distribution_id, cloudfront.read_distribution(client, distribution_id)


def start_reading_distribution(module: t.Any, pool: concurrent.futures.Executor) -> PendingDistribution | None:
    """Read the distribution the site options name on pool, while the bucket is read; None when none is named."""
    params = module.params
    selected = next((params[name] for name in DISTRIBUTION_SELECTORS if params[name]), None)
    if selected is None:
        return None
    client = module.client(
        "cloudfront", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=cloudfront.RETRY_ERROR_CODES)
    )
    return PendingDistribution(client, selected, pool.submit(fetch_distribution, client, params))


def read_distribution(module: t.Any, pending: PendingDistribution | None) -> Distribution | None:
    """The distribution, once read, before anything is written; fails the module when it cannot be read."""
    if pending is None:
        return None
    try:
        distribution_id, described = pending.future.result()
    except cloudfront.InvalidationError as e:
        module.fail_json(msg=f"{e}; nothing was written")
    except is_boto3_error_code("NoSuchDistribution"):
        module.fail_json(msg=f"CloudFront distribution {pending.selected} does not exist; nothing was written")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        failure = f"Failed to read CloudFront distribution {pending.selected}; nothing was written"
        module.fail_json_aws(e, msg=with_denial(module, e, failure, f"CloudFront distribution {pending.selected}"))
    return Distribution(pending.client, distribution_id, described)


def invalidation_paths(module: t.Any, plan: PublishPlan) -> list[str]:
    """The changed paths that are not content-hashed (and the extra ones), or /* with invalidate_all."""
    params = module.params
    if params["invalidate_all"]:
        return ["/*"] if plan.uploads else []
    changed = plan.invalidation_paths
    return changed + list(params["invalidation_extra_paths"]) if changed else []


def invalidate(module: t.Any, distribution: Distribution | None, plan: PublishPlan) -> dict[str, t.Any] | None:
    """Invalidate what the plan changed under an old name (/ with the default root object); None without a
    distribution. In check mode, says what would be invalidated."""
    if distribution is None:
        return None
    params = module.params
    paths = invalidation_paths(module, plan)
    if not paths:
        return {
            "changed": False,
            "distribution_id": distribution.distribution_id,
            "paths": [],
            "distribution": distribution.described,
        }
    try:
        result = cloudfront.ensure_invalidation(
            distribution.client,
            distribution.distribution_id,
            paths,
            release_id=plan.build_id,
            wait=params["invalidation_wait"],
            wait_timeout=params["invalidation_wait_timeout"],
            check_mode=module.check_mode,
            default_root_object=distribution.described["default_root_object"],
        )
    except cloudfront.InvalidationError as e:
        module.fail_json(msg=str(e), **e.details)
    except (BotoCoreError, ClientError) as e:
        failure = f"Failed to invalidate paths on CloudFront distribution {distribution.distribution_id}"
        module.fail_json_aws(
            e, msg=with_denial(module, e, failure, f"CloudFront distribution {distribution.distribution_id}")
        )
    return {**result.as_module_result(), "distribution": distribution.described}


def start_read_back(
    module: t.Any, client: t.Any, plan: PublishPlan, objects: t.Sequence[t.Mapping[str, t.Any]], pool: t.Any
) -> concurrent.futures.Future | None:
    """With verify, after the writes: one signed HeadObject per object (index.html and the files it references, in
    one parallel round) on pool, compared with what should be there. Also when nothing was written: the listing
    cannot tell an object whose headers were rewritten in place."""
    params = module.params
    if not params["verify"] or module.check_mode:
        return None
    return pool.submit(
        verify_objects, client, params["bucket"], plan.prefix, expected_objects(objects), params["workers"]
    )


def read_back(module: t.Any, plan: PublishPlan, pending: concurrent.futures.Future | None) -> dict[str, t.Any]:
    """What the read-back found; fails the module naming each object that differs."""
    if pending is None:
        return {"checked": [], "failures": []}
    location = f"s3://{module.params['bucket']}/{plan.prefix}"
    with reading(module, module.params["bucket"], location):
        checked, failures = pending.result()
    if failures:
        module.fail_json(
            msg=f"Read back after writing, {len(failures)} of {len(checked)} objects in {location} are not the build: "
            + "; ".join(failures),
            checked=checked,
            failures=failures,
        )
    return {"checked": checked, "failures": []}


def site_result(
    module: t.Any,
    client: t.Any,
    plan: PublishPlan,
    distribution: Distribution | None,
    build: t.Mapping[str, t.Any],
    pool: concurrent.futures.Executor,
) -> dict[str, t.Any]:
    """After the writes, side by side: the invalidation, and the read-back of index.html and the files it
    references (build, as frontend_build.BuildReport.to_result() gives it); and whether anything changed."""
    pending = start_read_back(module, client, plan, [build["index"], *build["referenced"]], pool)
    invalidation = invalidate(module, distribution, plan)
    result: dict[str, t.Any] = {"verify": read_back(module, plan, pending)}
    if invalidation is not None:
        result["invalidation"] = invalidation
        result["changed"] = plan.changed or invalidation["changed"]
    return result
