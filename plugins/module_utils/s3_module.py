# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the modules that write a published build (s3_publish, s3_rollback) share: option checks, the S3 client,
how read errors are reported, and carrying out a plan."""

from __future__ import annotations

import contextlib
import typing as t

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # caught by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    RETRY_ERROR_CODES,
    PublishError,
    PublishPlan,
    execute_plan,
    upload_arguments,
)


def check_write_options(module: t.Any) -> None:
    params = module.params
    if params["workers"] < 1:
        module.fail_json(msg="workers must be at least 1")
    if params["keep_previous"] < 0:
        module.fail_json(msg="keep_previous must not be negative")
    if params["encryption_kms_key_id"] and params["encryption"] != "aws:kms":
        module.fail_json(msg="encryption_kms_key_id needs encryption=aws:kms")


def s3_client(module: t.Any) -> t.Any:
    return module.client("s3", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=RETRY_ERROR_CODES))


@contextlib.contextmanager
def reading(module: t.Any, bucket: str, location: str) -> t.Iterator[None]:
    """Fail the module with a message naming the bucket or location when reading them fails."""
    try:
        yield
    except is_boto3_error_code("NoSuchBucket") as e:
        module.fail_json_aws(e, msg=f"Bucket {bucket} does not exist")
    except is_boto3_error_code(["AccessDenied", "403"]) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Access denied reading {location}")
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
        module.fail_json_aws(e, msg=failure)
    except PublishError as e:
        module.fail_json(msg=str(e))
