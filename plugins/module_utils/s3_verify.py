# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Check that a bucket holds the files of a local build as s3_publish put them there, with signed requests.

A private bucket (served only through CloudFront's origin access) answers anonymous reads with 403, so the
objects are read the way the publish wrote them: one signed HeadObject per key, no body downloaded. What S3
stored (size, Content-Type, Cache-Control, and every SHA-256 it holds: the checksum S3 keeps for an upload sent
with one, and the ``sha256`` metadata s3_publish gives each object) is compared with the local file.
"""

from __future__ import annotations

import base64
import binascii
import typing as t
from dataclasses import dataclass

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    METADATA_SHA256,
    LocalFile,
    PublishError,
    map_in_pool,
    normalise_etag,
)


@dataclass(frozen=True)
class StoredObject:
    """What HeadObject says of an object; SHA-256 digests in hex."""

    size: int
    etag: str
    cache_control: str | None = None
    content_type: str | None = None
    checksum_sha256: str | None = None
    metadata_sha256: str | None = None

    @property
    def sha256(self) -> str | None:
        """The SHA-256 S3 computed over the body when it has one, else the one the publisher recorded."""
        return self.checksum_sha256 or self.metadata_sha256


def checksum_to_hex(checksum: str | None) -> str | None:
    """A full-object ChecksumSHA256 (base64) in hex; None for a composite one, which is not the object's SHA-256."""
    # A multipart upload's composite checksum is a checksum of the parts' checksums, written "<base64>-<parts>".
    if not checksum or "-" in checksum:
        return None
    try:
        digest = base64.b64decode(checksum, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


def stored_object_from_head(response: t.Mapping[str, t.Any]) -> StoredObject:
    metadata = {name.lower(): value for name, value in (response.get("Metadata") or {}).items()}
    composite = (response.get("ChecksumType") or "").upper() == "COMPOSITE"
    return StoredObject(
        size=int(response.get("ContentLength", 0)),
        etag=normalise_etag(response.get("ETag")),
        cache_control=response.get("CacheControl"),
        content_type=response.get("ContentType"),
        checksum_sha256=None if composite else checksum_to_hex(response.get("ChecksumSHA256")),
        metadata_sha256=(metadata.get(METADATA_SHA256) or "").lower() or None,
    )


def object_differences(local: LocalFile, stored: StoredObject) -> list[str]:
    """What differs, one phrase each: what S3 has, then what the build has in parentheses."""
    differences = []
    if stored.size != local.size:
        differences.append(f"size {stored.size} (the build has {local.size})")
    if stored.content_type != local.content_type:
        differences.append(f"Content-Type {stored.content_type or '(none)'} (the build has {local.content_type})")
    if stored.cache_control != local.cache_control:
        differences.append(f"Cache-Control {stored.cache_control or '(none)'} (the build has {local.cache_control})")
    digests = {"SHA-256 checksum": stored.checksum_sha256, "sha256 metadata": stored.metadata_sha256}
    if not any(digests.values()):
        differences.append(f"no SHA-256 checksum or sha256 metadata (the build has sha256 {local.sha256})")
    for name, digest in digests.items():
        if digest and digest != local.sha256:
            differences.append(f"{name} {digest} (the build has {local.sha256})")
    return differences


def describe_failure(bucket: str, key: str, local: LocalFile, stored: StoredObject | None) -> str | None:
    """None when the object is the local file as published, else one line naming what differs."""
    location = f"s3://{bucket}/{key}"
    if stored is None:
        return f"{location} does not exist (the build has {local.path})"
    differences = object_differences(local, stored)
    return f"{location} has {', '.join(differences)}" if differences else None


def select_build_files(files: t.Sequence[tuple[str, str]], paths: t.Sequence[str] | None) -> list[tuple[str, str]]:
    """The (path, source) pairs ``paths`` names, relative to the build, each once in their order; all without paths."""
    if paths is None:
        return list(files)
    by_path = dict(files)
    wanted = list(dict.fromkeys(path.lstrip("/") for path in paths))
    unknown = [path for path in wanted if path not in by_path]
    if unknown:
        raise PublishError(f"paths names {len(unknown)} file(s) the build does not have: {', '.join(unknown)}")
    return [(path, by_path[path]) for path in wanted]


def expected_objects(objects: t.Sequence[t.Mapping[str, t.Any]]) -> list[LocalFile]:
    """The objects to expect, given as path, sha256, size, cache_control and content_type, each path once."""
    by_path = {}
    for item in objects:
        path = item["path"].lstrip("/")
        by_path.setdefault(
            path,
            LocalFile(
                path=path,
                source="",
                size=int(item["size"]),
                sha256=item["sha256"].lower(),
                content_type=item["content_type"],
                cache_control=item["cache_control"],
            ),
        )
    return list(by_path.values())


def checked_entry(key: str, local: LocalFile, stored: StoredObject | None, failure: str | None) -> dict[str, t.Any]:
    entry: dict[str, t.Any] = {"path": local.path, "key": key, "exists": stored is not None, "ok": failure is None}
    if stored is not None:
        entry.update(
            {
                "size": stored.size,
                "cache_control": stored.cache_control,
                "content_type": stored.content_type,
                "sha256": stored.sha256,
                "sha256_from": "checksum" if stored.checksum_sha256 else "metadata" if stored.metadata_sha256 else None,
            }
        )
    return entry


def head_stored_object(client: t.Any, bucket: str, key: str) -> StoredObject | None:
    """HeadObject with ChecksumMode, so S3 includes the object's stored checksum; None for a missing key."""
    try:
        response = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", aws_retry=True)
    except is_boto3_error_code(["404", "NoSuchKey", "NotFound"]):
        return None
    return stored_object_from_head(response)


def verify_objects(
    client: t.Any, bucket: str, prefix: str, files: t.Sequence[LocalFile], workers: int
) -> tuple[list[dict[str, t.Any]], list[str]]:
    """One HeadObject per file, in parallel; (what each key holds, in the order of files; the failure lines)."""
    keys = [prefix + item.path for item in files]
    stored = map_in_pool(lambda key: head_stored_object(client, bucket, key), keys, workers)
    checked, failures = [], []
    for key, local, found in zip(keys, files, stored):
        failure = describe_failure(bucket, key, local, found)
        checked.append(checked_entry(key, local, found, failure))
        if failure:
            failures.append(failure)
    return checked, failures
