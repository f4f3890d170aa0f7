# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Targeted, repeatable CloudFront invalidations.

Path planning, the deterministic caller reference and distribution matching are pure
functions; the few CloudFront calls take a client (boto3, or amazon.aws's retrying wrapper).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

try:
    import botocore.exceptions
except ImportError:
    pass  # caught by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# CloudFront limits on invalidations in progress at once; one batch beyond them is rejected.
MAX_PATHS_IN_PROGRESS = 3000
MAX_WILDCARD_PATHS_IN_PROGRESS = 15
MAX_PATH_LENGTH = 4000
INVALIDATE_EVERYTHING = "/*"
CALLER_REFERENCE_PREFIX = "flora-"
CALLER_REFERENCE_HASH_LENGTH = 32
# Besides throttling, which AWSRetry already retries.
RETRY_ERROR_CODES = ["TooManyInvalidationsInProgress", "ThrottlingException"]
# botocore's InvalidationCompleted waiter polls every 20 seconds.
WAITER_DELAY = 20

# RFC 1738 "unsafe" characters. CloudFront wants these, controls and non-ASCII URL-encoded,
# and every other character left alone (encoding "?" or "=" would miss the cached object).
RFC1738_UNSAFE = ' <>"#%{}|\\^~[]`'
_KEPT_CHARACTERS = frozenset(chr(code) for code in range(0x21, 0x7F) if chr(code) not in RFC1738_UNSAFE + "*")

_STATUS_SPELLING = {"completed": "Completed", "inprogress": "InProgress"}


class InvalidationError(Exception):
    """A failure with a message for the user; ``details`` are returned alongside it."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class PathPlan(NamedTuple):
    paths: list[str]
    collapsed: bool


class InvalidationResult(NamedTuple):
    changed: bool
    distribution_id: str
    invalidation_id: str | None
    status: str | None
    paths: list[str]
    caller_reference: str
    collapsed: bool
    # What GetDistribution said of the distribution, when it was read (check mode).
    distribution: dict[str, Any] | None = None

    def as_module_result(self) -> dict[str, Any]:
        result = self._asdict()
        if result["distribution"] is None:
            del result["distribution"]
        return result


def _percent_encode(character: str) -> str:
    return "".join(f"%{byte:02X}" for byte in character.encode("utf-8"))


def encode_path(path: str) -> str:
    """URL-encode an unencoded path the way CloudFront expects; a trailing ``*`` stays a wildcard."""
    wildcard = path.endswith("*")
    body = path[:-1] if wildcard else path
    encoded = "".join(ch if ch in _KEPT_CHARACTERS else _percent_encode(ch) for ch in body)
    return (encoded + "*") if wildcard else encoded


def normalise_path(path: str) -> str:
    if not path:
        raise InvalidationError("paths must not contain empty strings")
    if not path.startswith("/"):
        path = "/" + path
    encoded = encode_path(path)
    if len(encoded) > MAX_PATH_LENGTH:
        raise InvalidationError(
            f"Path {path[:80]!r}... is {len(encoded)} characters once encoded; CloudFront allows {MAX_PATH_LENGTH}"
        )
    return encoded


def is_wildcard(path: str) -> bool:
    return path.endswith("*")


def drop_covered_paths(paths: Iterable[str]) -> list[str]:
    """Paths a wildcard in the same list already invalidates are left out (``/a/*`` covers ``/a/b.js``)."""
    paths = list(paths)
    prefixes = {path[:-1] for path in paths if is_wildcard(path)}

    def covered(path: str) -> bool:
        # Only proper prefixes: "/a/*" does not drop the object "/a/" itself.
        stem = path[:-1] if is_wildcard(path) else path
        return any(stem[:end] in prefixes for end in range(1, len(stem)))

    return [path for path in paths if not covered(path)]


def plan_paths(paths: Iterable[str]) -> PathPlan:
    """Normalise, de-duplicate and sort paths; fall back to ``/*`` when one batch could not hold them."""
    normalised = sorted({normalise_path(path) for path in paths})
    if not normalised:
        raise InvalidationError("paths must name at least one path")
    if INVALIDATE_EVERYTHING in normalised:
        return PathPlan([INVALIDATE_EVERYTHING], collapsed=len(normalised) > 1)
    kept = drop_covered_paths(normalised)
    wildcards = sum(1 for path in kept if is_wildcard(path))
    if len(kept) > MAX_PATHS_IN_PROGRESS or wildcards > MAX_WILDCARD_PATHS_IN_PROGRESS:
        return PathPlan([INVALIDATE_EVERYTHING], collapsed=True)
    return PathPlan(kept, collapsed=False)


def with_root_path(paths: Iterable[str], default_root_object: str | None) -> list[str]:
    """``paths`` and ``/`` when the default root object is among them: CloudFront caches it under both."""
    paths = list(paths)
    root_object = (default_root_object or "").lstrip("/")
    if root_object and normalise_path(root_object) in {normalise_path(path) for path in paths if path}:
        return [*paths, "/"]
    return paths


def caller_reference(paths: Iterable[str], release_id: str | None = None) -> str:
    """The same paths and release always give the same reference, so CloudFront can de-duplicate."""
    payload = json.dumps({"paths": sorted(paths), "release_id": release_id or None}, sort_keys=True)
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    return CALLER_REFERENCE_PREFIX + digest[:CALLER_REFERENCE_HASH_LENGTH]


def _dns_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def distribution_has_alias(summary: dict[str, Any], alias: str) -> bool:
    """An exact (case-insensitive) CNAME, or the distribution's own cloudfront.net domain name."""
    names = list((summary.get("Aliases") or {}).get("Items") or [])
    names.append(summary.get("DomainName") or "")
    return _dns_name(alias) in {_dns_name(name) for name in names if name}


def distribution_comment_contains(summary: dict[str, Any], text: str) -> bool:
    return text in (summary.get("Comment") or "")


def select_distribution(
    summaries: Iterable[dict[str, Any]], alias: str | None = None, comment_contains: str | None = None
) -> str:
    """The id of the one distribution matching ``alias`` or ``comment_contains``."""
    if alias:
        matched = [summary for summary in summaries if distribution_has_alias(summary, alias)]
        described = f"the alias {alias!r}"
    elif comment_contains:
        matched = [summary for summary in summaries if distribution_comment_contains(summary, comment_contains)]
        described = f"a comment containing {comment_contains!r}"
    else:
        raise InvalidationError("Set distribution_id, or a non-empty alias or comment_contains")
    if not matched:
        raise InvalidationError(f"No CloudFront distribution has {described}")
    if len(matched) > 1:
        ids = ", ".join(sorted(summary["Id"] for summary in matched))
        raise InvalidationError(
            f"{len(matched)} CloudFront distributions have {described}: {ids}; set distribution_id to choose one",
            {"matching_distribution_ids": sorted(summary["Id"] for summary in matched)},
        )
    return matched[0]["Id"]


def created_at(invalidation: dict[str, Any]) -> float:
    create_time = invalidation.get("CreateTime")
    return create_time.timestamp() if create_time else float("-inf")


def newest_first(summaries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(summaries, key=created_at, reverse=True)


def find_invalidation(
    summaries: Iterable[dict[str, Any]], reference: str, get_invalidation: Callable[[str], dict[str, Any]]
) -> dict[str, Any] | None:
    """The newest invalidation among ``summaries`` with caller reference ``reference``, or None."""
    for summary in newest_first(summaries):
        invalidation = get_invalidation(summary["Id"])
        if invalidation["InvalidationBatch"]["CallerReference"] == reference:
            return invalidation
    return None


def invalidation_paths(invalidation: dict[str, Any]) -> list[str]:
    return sorted(invalidation["InvalidationBatch"]["Paths"].get("Items") or [])


def normalise_status(status: str | None) -> str | None:
    """CloudFront says InProgress or Completed; compatible endpoints (moto) may say COMPLETED."""
    if not status:
        return status
    return _STATUS_SPELLING.get(status.replace("_", "").lower(), status)


def is_completed(status: str | None) -> bool:
    return normalise_status(status) == "Completed"


def waiter_config(timeout: int) -> dict[str, int]:
    """Delay and attempts so that the waiter gives up after about ``timeout`` seconds."""
    delay = max(1, min(WAITER_DELAY, timeout))
    return {"Delay": delay, "MaxAttempts": max(1, timeout // delay) + 1}


def invalidation_diff(result: InvalidationResult) -> dict[str, Any]:
    header = f"CloudFront distribution {result.distribution_id}, caller reference {result.caller_reference}"
    return {
        "before": {"paths": [] if result.changed else list(result.paths)},
        "after": {"paths": list(result.paths)},
        "before_header": header,
        "after_header": header,
    }


def _conflict_error(distribution_id: str, reference: str, details: dict[str, Any]) -> InvalidationError:
    return InvalidationError(
        f"CloudFront distribution {distribution_id} already has an invalidation with caller reference {reference} "
        "for other paths. The reference is a hash of the paths and release_id, so something other than this "
        "module must have used it; set a different release_id.",
        details,
    )


def _missing_distribution_error(distribution_id: str, details: dict[str, Any]) -> InvalidationError:
    return InvalidationError(f"CloudFront distribution {distribution_id} does not exist", details)


@AWSRetry.jittered_backoff()
def list_distribution_summaries(client: Any) -> list[dict[str, Any]]:
    result = client.get_paginator("list_distributions").paginate().build_full_result()
    return (result.get("DistributionList") or {}).get("Items") or []


def find_distribution_id(client: Any, alias: str | None = None, comment_contains: str | None = None) -> str:
    return select_distribution(list_distribution_summaries(client), alias=alias, comment_contains=comment_contains)


def site_url(domain_name: str, aliases: list[str]) -> str:
    """Where visitors reach the distribution: https:// and its first alias, else its own domain name."""
    name = next((alias for alias in aliases if alias and "*" not in alias), "") or domain_name
    return f"https://{_dns_name(name)}" if name else ""


def describe_distribution(distribution: dict[str, Any]) -> dict[str, Any]:
    """What a deploy needs of GetDistribution's answer: its names, its URL and its default root object."""
    config = distribution.get("DistributionConfig") or {}
    domain_name = distribution.get("DomainName") or ""
    aliases = list((config.get("Aliases") or {}).get("Items") or [])
    return {
        "domain_name": domain_name,
        "aliases": aliases,
        "url": site_url(domain_name, aliases),
        "default_root_object": config.get("DefaultRootObject") or "",
    }


def read_distribution(client: Any, distribution_id: str) -> dict[str, Any]:
    """GetDistribution, which fails for an unknown distribution on every endpoint."""
    return describe_distribution(client.get_distribution(Id=distribution_id, aws_retry=True)["Distribution"])


def recent_invalidation_summaries(client: Any, distribution_id: str, limit: int) -> list[dict[str, Any]]:
    """One page of the newest invalidations; never the whole history, which grows with every deploy."""
    response = client.list_invalidations(DistributionId=distribution_id, MaxItems=str(limit), aws_retry=True)
    return (response.get("InvalidationList") or {}).get("Items") or []


def get_invalidation(client: Any, distribution_id: str, invalidation_id: str) -> dict[str, Any]:
    return client.get_invalidation(DistributionId=distribution_id, Id=invalidation_id, aws_retry=True)["Invalidation"]


def create_invalidation(client: Any, distribution_id: str, paths: list[str], reference: str) -> dict[str, Any]:
    # Retrying is safe: CloudFront answers a repeated caller reference with the first invalidation.
    response = client.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": reference},
        aws_retry=True,
    )
    return response["Invalidation"]


def wait_for_invalidation(client: Any, distribution_id: str, invalidation_id: str, timeout: int) -> None:
    waiter = client.get_waiter("invalidation_completed")
    waiter.wait(DistributionId=distribution_id, Id=invalidation_id, WaiterConfig=waiter_config(timeout))


def ensure_invalidation(
    client: Any,
    distribution_id: str,
    paths: Iterable[str],
    release_id: str | None = None,
    recent_limit: int = 10,
    wait: bool = False,
    wait_timeout: int = 600,
    check_mode: bool = False,
    default_root_object: str | None = None,
) -> InvalidationResult:
    """Create the invalidation for ``paths`` unless one with the same caller reference exists.

    ``default_root_object``: the distribution's, as the caller knows it; ``/`` is invalidated with it.
    """
    plan = plan_paths(with_root_path(paths, default_root_object))
    reference = caller_reference(plan.paths, release_id)
    result = InvalidationResult(
        changed=False,
        distribution_id=distribution_id,
        invalidation_id=None,
        status=None,
        paths=plan.paths,
        caller_reference=reference,
        collapsed=plan.collapsed,
    )

    if check_mode:
        # ListInvalidations does not fail for an unknown distribution everywhere (moto lists nothing), and
        # nothing is created here to find out: a dry run confirms the distribution, and says what it read.
        try:
            result = result._replace(distribution=read_distribution(client, distribution_id))
        except is_boto3_error_code("NoSuchDistribution") as e:
            raise _missing_distribution_error(distribution_id, result.as_module_result()) from e

    try:
        recent = recent_invalidation_summaries(client, distribution_id, recent_limit)
        existing = find_invalidation(
            recent, reference, lambda invalidation_id: get_invalidation(client, distribution_id, invalidation_id)
        )
    except is_boto3_error_code("NoSuchDistribution") as e:
        raise _missing_distribution_error(distribution_id, result.as_module_result()) from e

    if existing is not None:
        if invalidation_paths(existing) != plan.paths:
            raise _conflict_error(distribution_id, reference, result.as_module_result())
        result = result._replace(invalidation_id=existing["Id"], status=normalise_status(existing.get("Status")))
    elif check_mode:
        return result._replace(changed=True)
    else:
        try:
            created = create_invalidation(client, distribution_id, plan.paths, reference)
        except is_boto3_error_code("InvalidationBatchAlreadyExists") as e:
            raise _conflict_error(distribution_id, reference, result.as_module_result()) from e
        except is_boto3_error_code("NoSuchDistribution") as e:
            raise _missing_distribution_error(distribution_id, result.as_module_result()) from e
        # CloudFront hands back an existing invalidation for a known caller reference. If it is
        # older than one we listed, it was not created now, just outside the recent window.
        reused = created_at(created) < max(map(created_at, recent), default=float("-inf"))
        result = result._replace(
            changed=not reused, invalidation_id=created["Id"], status=normalise_status(created.get("Status"))
        )

    if wait and not check_mode and not is_completed(result.status):
        try:
            wait_for_invalidation(client, distribution_id, result.invalidation_id, wait_timeout)
        except botocore.exceptions.WaiterError as e:
            raise InvalidationError(
                f"Invalidation {result.invalidation_id} on CloudFront distribution {distribution_id} "
                f"did not complete within {wait_timeout} seconds: {e}",
                result.as_module_result(),
            ) from e
        result = result._replace(status="Completed")
    return result
