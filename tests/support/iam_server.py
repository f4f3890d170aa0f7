"""The moto server, authorizing each request against the caller's IAM policies as AWS does, per resource.

moto authorizes S3 requests per bucket and key, but every other service's against the resource ``*``, so a policy
scoped to the environment's parameters or to one distribution denies everything. Run as
``python -m tests.support.iam_server -H 127.0.0.1 -p PORT``, this starts moto's server after giving it:

- the resource AWS authorizes for the calls this collection makes: the parameter ARN of each name (or of the
  path) for SSM, the distribution ARN for CloudFront, the target group ARN for ELBv2 registrations, the DB
  instance and snapshot ARNs (or the tagged resource's) for RDS snapshots;
- S3's own action names where moto's differ: HeadBucket is authorized as s3:ListBucket, DeleteObjects as
  s3:DeleteObject on each key;
- AWS's AccessDenied answers, in each service's protocol and naming the action and the resource
  ("User: <arn> is not authorized to perform: <action> on resource: <arn> because no identity-based policy
  allows the <action> action"), where moto sends an XML error to JSON clients;
- the signature of CloudFront's GET requests checked over what the client signed (moto refuses each with
  SignatureDoesNotMatch, which botocore reads as an error with an empty code).

Authorization starts when ``/moto-api/reset-auth`` is given 0 (``tests.support.identities.enforcing``).
"""

from __future__ import annotations

import re
import sys

import xmltodict
from moto.cloudfront.responses import CloudFrontResponse
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.elbv2.responses import ELBV2Response
from moto.iam.access_control import IAMRequest, IAMRequestBase, S3IAMRequest
from moto.rds.responses import RDSResponse
from moto.s3.exceptions import BucketAccessDeniedError, S3AccessDeniedError
from moto.s3.responses import ACTION_MAP, S3Response
from moto.server import main as moto_main
from moto.ssm.responses import SimpleSystemManagerResponse
from werkzeug.exceptions import HTTPException

# SSM calls on named parameters: the request field that names them.
SSM_NAMED = {
    "GetParameter": "Name",
    "GetParameterHistory": "Name",
    "PutParameter": "Name",
    "DeleteParameter": "Name",
    "LabelParameterVersion": "Name",
    "GetParameters": "Names",
    "DeleteParameters": "Names",
    "GetParametersByPath": "Path",
}
CLOUDFRONT_DISTRIBUTION = re.compile(r"/distribution/([^/]+)")
ELBV2_TARGET_GROUP_CALLS = {"RegisterTargets", "DeregisterTargets", "ModifyTargetGroup", "DeleteTargetGroup"}
# RDS calls on named instances and snapshots: the kind of resource and the request field that names it.
RDS_NAMED = {
    "CreateDBSnapshot": (("db", "DBInstanceIdentifier"), ("snapshot", "DBSnapshotIdentifier")),
    "DescribeDBSnapshots": (("db", "DBInstanceIdentifier"), ("snapshot", "DBSnapshotIdentifier")),
    "DescribeDBInstances": (("db", "DBInstanceIdentifier"),),
    "DeleteDBSnapshot": (("snapshot", "DBSnapshotIdentifier"),),
}
RDS_TAG_CALLS = {"AddTagsToResource", "ListTagsForResource", "RemoveTagsFromResource"}


def parameter_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def distribution_arn(account: str, distribution_id: str) -> str:
    return f"arn:aws:cloudfront::{account}:distribution/{distribution_id}"


def denied_call(action: str, resource: str, quote: str = "") -> str:
    """What AWS's AccessDenied message says after "is not authorized to perform: "."""
    on = f" on resource: {quote}{resource}{quote}" if resource != "*" else ""
    return f"{action}{on} because no identity-based policy allows the {action} action"


def denial_message(principal: str, action: str, resource: str, quote: str = "") -> str:
    return f"User: {principal} is not authorized to perform: {denied_call(action, resource, quote)}"


class CloudFrontAccessDenied(HTTPException):
    """CloudFront's error document: one Error, not the query protocol's Errors list."""

    code = 403

    def __init__(self, message: str):
        super().__init__()
        self.description = (
            '<?xml version="1.0"?><ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">'
            f"<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{escape(message)}</Message></Error>"
            "</ErrorResponse>"
        )

    def get_headers(self, *args, **kwargs):
        return [("Content-Type", "text/xml")]


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def authorize(response, resource: str = "*") -> None:
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action(response, resource)


def authorize_ssm(self: SimpleSystemManagerResponse, resource: str = "*") -> None:
    """Each parameter the call names (or the path) is authorized: a call naming one it may not read fails whole."""
    field = SSM_NAMED.get(self._get_action())
    value = self._get_param(field) if field else None
    if not value:
        authorize(self, resource)
        return
    for name in value if isinstance(value, list) else [value]:
        authorize(self, parameter_arn(self.region, self.current_account, name))


def authorize_cloudfront(self: CloudFrontResponse, resource: str = "*") -> None:
    found = CLOUDFRONT_DISTRIBUTION.search(self.path or "")
    authorize(self, distribution_arn(self.current_account, found.group(1)) if found else resource)


def authorize_elbv2(self: ELBV2Response, resource: str = "*") -> None:
    if self._get_action() in ELBV2_TARGET_GROUP_CALLS:
        resource = self._get_param("TargetGroupArn") or resource
    authorize(self, resource)


def authorize_rds(self: RDSResponse, resource: str = "*") -> None:
    """Each DB instance and snapshot the call names is authorized (CreateDBSnapshot on both), as AWS does."""
    action = self._get_action()
    if action in RDS_TAG_CALLS:
        named = [self._get_param("ResourceName")]
    else:
        arn = f"arn:aws:rds:{self.region}:{self.current_account}"
        named = [
            f"{arn}:{kind}:{value}" for kind, field in RDS_NAMED.get(action, ()) if (value := self._get_param(field))
        ]
    for each in named or [resource]:
        authorize(self, each)


def check_action_permitted(self: IAMRequestBase, resource: str) -> None:
    self.requested_resource = resource
    original_check_action_permitted(self, resource)


def create_aws_request(self: IAMRequestBase):
    """The request as the client signed it: moto computes the signature over the parsed parameters when the body
    is empty, which for a CloudFront GET is not what the client signed."""
    request = original_create_aws_request(self)
    if self._service == "cloudfront" and not self._body:
        request.data = b""
    return request


def raise_access_denied(self: IAMRequest) -> None:
    resource = getattr(self, "requested_resource", "*")
    if self._service == "ssm":
        raise JsonRESTError("AccessDeniedException", denial_message(self._access_key.arn, self._action, resource))
    if self._service == "cloudfront":
        raise CloudFrontAccessDenied(denial_message(self._access_key.arn, self._action, resource))
    # The query protocol's error, as moto writes it: "User: <arn> is not authorized to perform: <what follows>".
    raise AccessDeniedError(user_arn=self._access_key.arn, action=denied_call(self._action, resource))


def raise_s3_access_denied(self: S3IAMRequest) -> None:
    message = denial_message(self._access_key.arn, self._action, getattr(self, "requested_resource", "*"), quote='"')
    error = BucketAccessDeniedError(self._data["BucketName"]) if "BucketName" in self._data else S3AccessDeniedError()
    error.message = message
    raise error


def s3_bucket_post(self: S3Response, request, bucket_name: str):
    """DeleteObjects authorized as s3:DeleteObject on each key, as AWS does."""
    self.path = self._get_path(request)
    if not self.is_delete_keys() or not request.headers.get("Content-Length"):
        return original_bucket_post(self, request, bucket_name)
    self.data["Action"] = "DeleteObject"
    objects = xmltodict.parse(self.body, strip_whitespace=False)["Delete"].get("Object", [])
    keys = [item["Key"] for item in (objects if isinstance(objects, list) else [objects])]
    try:
        for key in keys:
            self._authenticate_and_authorize_s3_action(bucket_name=bucket_name, key_name=key)
    except BucketAccessDeniedError:
        return self._bucket_response_delete_keys(bucket_name, authenticated=False)
    return self._bucket_response_delete_keys(bucket_name)


original_check_action_permitted = IAMRequestBase.check_action_permitted
original_bucket_post = S3Response._bucket_response_post
original_create_aws_request = IAMRequestBase._create_aws_request


def install() -> None:
    IAMRequestBase.check_action_permitted = check_action_permitted
    IAMRequestBase._create_aws_request = create_aws_request
    IAMRequest._raise_access_denied = raise_access_denied
    S3IAMRequest._raise_access_denied = raise_s3_access_denied
    ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
    S3Response._bucket_response_post = s3_bucket_post
    SimpleSystemManagerResponse._authenticate_and_authorize_normal_action = authorize_ssm
    CloudFrontResponse._authenticate_and_authorize_normal_action = authorize_cloudfront
    ELBV2Response._authenticate_and_authorize_normal_action = authorize_elbv2
    RDSResponse._authenticate_and_authorize_normal_action = authorize_rds


def main(argv: list[str] | None = None) -> None:
    install()
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
