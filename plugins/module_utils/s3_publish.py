# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Publish a static build directory to S3 by content, not by modification time.

The bucket holds one JSON manifest per published build under ``<prefix>.publish/manifests/``.
Remote state is one listing of the prefix plus the latest few manifests; a file is unchanged
when the listed object still carries the ETag the manifest recorded and the manifest's SHA-256,
Cache-Control and Content-Type equal the local ones.  Planning is pure; the functions that talk
to S3 take a boto3 client (or the amazon.aws retrying wrapper around one).
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import mimetypes
import os
import re
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

T = t.TypeVar("T")
R = t.TypeVar("R")

METADATA_SHA256 = "sha256"
PUBLISH_DIR = ".publish/"
MANIFESTS_DIR = PUBLISH_DIR + "manifests/"
# Copies of overwritten objects a retained build still needs, named by SHA-256, for rollbacks.
STORED_DIR = PUBLISH_DIR + "objects/"
MANIFEST_FORMAT = 1
INDEX_DOCUMENT = "index.html"
DELETE_BATCH_SIZE = 1000
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"

CACHE_ENTRY_DOCUMENT = "public,max-age=60"
CACHE_IMMUTABLE = "public,max-age=31536000,immutable"
CACHE_REVALIDATE = "public,max-age=0,must-revalidate"

# Vite/Rollup output: assets/<name>-<8 char hash>.<ext>, source maps included.  The look-ahead wants
# a digit or capital in the hash, so a plain public file such as assets/my-logotype.png (whose
# "logotype" fits the pattern) is never cached as immutable.
HASHED_ASSET_PATTERN = r"^(?:.*/)?assets/[^/]+-(?=[A-Za-z0-9_-]*[A-Z0-9])[A-Za-z0-9_-]{8}(?:\.[A-Za-z0-9]+)+$"

DEFAULT_CACHE_RULES: tuple[dict[str, str], ...] = (
    {"glob": "*.html", "cache_control": CACHE_ENTRY_DOCUMENT},
    {"regex": HASHED_ASSET_PATTERN, "cache_control": CACHE_IMMUTABLE},
    {"glob": "*", "cache_control": CACHE_REVALIDATE},
)

DEFAULT_CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
}
FALLBACK_CONTENT_TYPE = "application/octet-stream"


# Argument spec of the cache rule and content type options, shared by the modules that classify build files.
BUILD_FILE_RULES_ARGUMENT_SPEC = {
    "cache_rules": {
        "type": "list",
        "elements": "dict",
        "options": {
            "glob": {"type": "str"},
            "regex": {"type": "str"},
            "cache_control": {"type": "str", "required": True},
        },
        "mutually_exclusive": [["glob", "regex"]],
        "required_one_of": [["glob", "regex"]],
    },
    "content_types": {"type": "dict"},
}


# Besides throttling, which AWSRetry already retries.
RETRY_ERROR_CODES = ["SlowDown", "RequestTimeout"]
CANNED_ACLS = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
]
# Argument spec of the options that set how objects are written, shared by the modules that write them.
OBJECT_WRITE_ARGUMENT_SPEC = {
    "acl": {"type": "str", "choices": CANNED_ACLS},
    "encryption": {"type": "str", "choices": ["AES256", "aws:kms"]},
    "encryption_kms_key_id": {"type": "str"},
}


class PublishError(Exception):
    """A publish that cannot go ahead; the message is meant for the user."""


class DeleteDenied(PublishError):
    """DeleteObjects refused a key with AccessDenied: the caller may not s3:DeleteObject it."""

    def __init__(self, message: str, bucket: str, key: str):
        super().__init__(message)
        self.bucket = bucket
        self.key = key


class BuildDirectoryError(PublishError):
    """The directory to publish is not a build we are willing to publish."""


class ManifestError(PublishError):
    """A manifest in the bucket cannot be read."""


# ---------------------------------------------------------------------------
# Naming and rules


def normalise_prefix(prefix: str | None) -> str:
    """'/site//' -> 'site/', '' or '/' -> ''."""
    stripped = (prefix or "").strip("/")
    return stripped + "/" if stripped else ""


def normalise_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


@dataclass(frozen=True)
class CacheRule:
    cache_control: str
    glob: str | None = None
    regex: str | None = None

    def matches(self, path: str) -> bool:
        if self.glob is not None:
            return fnmatch.fnmatchcase(path, self.glob)
        return re.search(t.cast(str, self.regex), path) is not None


def compile_cache_rules(user_rules: t.Iterable[t.Mapping[str, t.Any]] | None) -> list[CacheRule]:
    """User rules first, then the built-in ones, so the last built-in rule catches every file."""
    rules = []
    for number, rule in enumerate(list(user_rules or []) + list(DEFAULT_CACHE_RULES), start=1):
        glob, regex = rule.get("glob"), rule.get("regex")
        if (glob is None) == (regex is None):
            raise PublishError(f"cache rule {number} needs exactly one of glob or regex")
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as e:
                raise PublishError(f"cache rule {number}: invalid regex {regex!r}: {e}") from e
        rules.append(CacheRule(cache_control=rule["cache_control"], glob=glob, regex=regex))
    return rules


def cache_control_for(path: str, rules: t.Sequence[CacheRule]) -> str:
    for rule in rules:
        if rule.matches(path):
            return rule.cache_control
    return CACHE_REVALIDATE


def is_immutable(cache_control: str) -> bool:
    directives = (part.strip().lower() for part in cache_control.split(","))
    return "immutable" in directives


def normalise_content_type_overrides(overrides: t.Mapping[str, str] | None) -> dict[str, str]:
    """{'WASM': 'x', '.br': 'y'} -> {'.wasm': 'x', '.br': 'y'}."""
    return {"." + ext.lower().lstrip("."): value for ext, value in (overrides or {}).items()}


def content_type_for(path: str, overrides: t.Mapping[str, str] | None = None) -> str:
    extension = os.path.splitext(path)[1].lower()
    known = dict(DEFAULT_CONTENT_TYPES)
    known.update(overrides or {})
    if extension in known:
        return known[extension]
    guessed, encoding = mimetypes.guess_type(path, strict=False)
    # A guess with an encoding (x.tar.gz) names the wrapped type: serving it as such would be wrong.
    return guessed if guessed and not encoding else FALLBACK_CONTENT_TYPE


def is_entry_document(path: str, entry_globs: t.Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in entry_globs)


def format_timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(TIMESTAMP_FORMAT)


def parse_build_timestamp(build_id: str) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.strptime(build_id.split("-", 1)[0], TIMESTAMP_FORMAT)
    except ValueError:
        return None
    return moment.replace(tzinfo=datetime.UTC)


def next_build_timestamp(now: datetime.datetime, latest_build_id: str | None) -> datetime.datetime:
    """Manifests are ordered by name: a clock behind the latest build must not put the new build first."""
    latest = parse_build_timestamp(latest_build_id) if latest_build_id else None
    if latest is not None and now <= latest:
        return latest + datetime.timedelta(microseconds=1)
    return now


def manifest_key_for(prefix: str, build_id: str) -> str:
    return f"{prefix}{MANIFESTS_DIR}{build_id}.json"


def build_id_from_manifest_key(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.removesuffix(".json")


def is_manifest_key(key: str, prefix: str) -> bool:
    return key.startswith(prefix + MANIFESTS_DIR) and key.endswith(".json")


def stored_copy_key(prefix: str, sha256: str) -> str:
    return f"{prefix}{STORED_DIR}{sha256}"


def is_publish_key(key: str, prefix: str) -> bool:
    """Our own bookkeeping under <prefix>.publish/ is never treated as site content."""
    return key.startswith(prefix + PUBLISH_DIR)


# ---------------------------------------------------------------------------
# Local build


@dataclass(frozen=True)
class LocalFile:
    path: str
    source: str
    size: int
    sha256: str
    content_type: str
    cache_control: str
    # A rollback puts a file back from a copy in the bucket (this key) instead of uploading it from source.
    copy_from: str = ""

    @property
    def immutable(self) -> bool:
        return is_immutable(self.cache_control)


def sha256_of_file(source: str) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_build_files(src: str) -> list[tuple[str, str]]:
    """(relative posix path, filesystem path) of every regular file under src, sorted.

    Hidden files are included (.well-known/ is content).  Symbolic links are followed only
    when they name a regular file inside src; linked directories are not descended into.
    """
    root = os.path.realpath(src)
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            source = os.path.join(directory, name)
            if os.path.islink(source):
                target = os.path.realpath(source)
                if os.path.commonpath([root, target]) != root:
                    continue
            if not os.path.isfile(source):
                continue
            relative = os.path.relpath(source, root).replace(os.sep, "/")
            found.append((relative, source))
    return sorted(found)


def check_build_directory(src: str) -> list[tuple[str, str]]:
    """The files to publish, or BuildDirectoryError for a build that must not be published."""
    if not os.path.exists(src):
        raise BuildDirectoryError(f"Build directory {src} does not exist")
    if not os.path.isdir(src):
        raise BuildDirectoryError(f"Build path {src} is not a directory")
    files = list_build_files(src)
    if not files:
        raise BuildDirectoryError(f"Build directory {src} contains no files")
    paths = {path for path, dummy in files}
    if INDEX_DOCUMENT not in paths:
        raise BuildDirectoryError(
            f"Build directory {src} has no {INDEX_DOCUMENT}; refusing to publish an incomplete build"
        )
    reserved = sorted(path for path in paths if path.startswith(PUBLISH_DIR))
    if reserved:
        raise BuildDirectoryError(
            f"Build directory {src} contains {reserved[0]}; {PUBLISH_DIR} is reserved for publish manifests"
        )
    return files


def describe_local_files(
    files: t.Iterable[tuple[str, str]],
    cache_rules: t.Sequence[CacheRule],
    content_type_overrides: t.Mapping[str, str] | None = None,
) -> list[LocalFile]:
    return [
        LocalFile(
            path=path,
            source=source,
            size=os.path.getsize(source),
            sha256=sha256_of_file(source),
            content_type=content_type_for(path, content_type_overrides),
            cache_control=cache_control_for(path, cache_rules),
        )
        for path, source in files
    ]


def build_hash(files: t.Iterable[LocalFile]) -> str:
    """Short hash over what a visitor gets: path, content and headers of every file."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.path):
        digest.update(f"{item.path}\0{item.sha256}\0{item.cache_control}\0{item.content_type}\n".encode())
    return digest.hexdigest()[:12]


# ---------------------------------------------------------------------------
# Remote state


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class ObjectRecord:
    """What a manifest (or a HeadObject) tells about one object."""

    size: int
    etag: str
    sha256: str | None = None
    cache_control: str | None = None
    content_type: str | None = None

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "etag": self.etag,
            "cache_control": self.cache_control,
            "content_type": self.content_type,
        }

    def describes(self, listed: ListedObject) -> bool:
        return self.size == listed.size and normalise_etag(self.etag) == normalise_etag(listed.etag)

    def matches(self, other: LocalFile | ObjectRecord) -> bool:
        """The same content and headers as a local file, or another record (the ETag may differ: a copy of an
        object has its own)."""
        return (
            self.sha256 == other.sha256
            and self.size == other.size
            and self.cache_control == other.cache_control
            and self.content_type == other.content_type
        )


@dataclass
class Manifest:
    build_id: str
    objects: dict[str, ObjectRecord]
    adopted: bool = False
    # What the build was made from (a commit, an env checksum), as the publisher said.
    source: dict[str, t.Any] | None = None
    # The build a rollback put back live.
    restored_from: str | None = None

    def to_json(self) -> str:
        document = {
            "format": MANIFEST_FORMAT,
            "build_id": self.build_id,
            "adopted": self.adopted,
            "source": self.source,
            "objects": {path: self.objects[path].to_dict() for path in sorted(self.objects)},
        }
        if self.restored_from:
            document["restored_from"] = self.restored_from
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, key: str) -> Manifest:
        try:
            document = json.loads(text)
            objects = {
                path: ObjectRecord(
                    size=int(entry["size"]),
                    etag=normalise_etag(entry["etag"]),
                    sha256=entry.get("sha256"),
                    cache_control=entry.get("cache_control"),
                    content_type=entry.get("content_type"),
                )
                for path, entry in document["objects"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ManifestError(f"Manifest {key} is not a valid publish manifest ({e}); delete it to continue") from e
        build_id = document.get("build_id") or build_id_from_manifest_key(key)
        source = document.get("source")
        return cls(
            build_id=build_id,
            objects=objects,
            adopted=bool(document.get("adopted")),
            source=source if isinstance(source, dict) else None,
            restored_from=document.get("restored_from") or None,
        )

    def serves_the_same(self, other: Manifest) -> bool:
        """The same files with the same headers, made from the same source."""
        return (
            self.source == other.source
            and self.objects.keys() == other.objects.keys()
            and all(record.matches(other.objects[path]) for path, record in self.objects.items())
        )


@dataclass
class RemoteState:
    listing: dict[str, ListedObject]
    manifest_keys: list[str]
    manifests: dict[str, Manifest] = field(default_factory=dict)
    head_records: dict[str, ObjectRecord] = field(default_factory=dict)
    # SHA-256 of the stored copies under <prefix>.publish/objects/.
    stored: set[str] = field(default_factory=set)

    @property
    def latest_manifest_key(self) -> str | None:
        return self.manifest_keys[-1] if self.manifest_keys else None

    def manifests_newest_first(self) -> list[Manifest]:
        return [self.manifests[key] for key in reversed(self.manifest_keys) if key in self.manifests]

    def vouched_records(self, prefix: str) -> dict[str, ObjectRecord]:
        """What we know about listed objects: from manifests, else from HeadObject."""
        records = known_records(prefix, self.listing, self.manifests_newest_first())
        records.update({key: record for key, record in self.head_records.items() if key not in records})
        return records


def split_listing(
    contents: t.Iterable[t.Mapping[str, t.Any]], prefix: str
) -> tuple[dict[str, ListedObject], list[str]]:
    """ListObjectsV2 'Contents' -> (site objects by key, manifest keys oldest first)."""
    listing: dict[str, ListedObject] = {}
    manifest_keys = []
    for entry in contents:
        key = entry["Key"]
        if is_manifest_key(key, prefix):
            manifest_keys.append(key)
        elif not is_publish_key(key, prefix) and not key.endswith("/"):
            listing[key] = ListedObject(key=key, size=int(entry.get("Size", 0)), etag=normalise_etag(entry.get("ETag")))
    return listing, sorted(manifest_keys)


def split_stored_copies(contents: t.Iterable[t.Mapping[str, t.Any]], prefix: str) -> set[str]:
    """ListObjectsV2 'Contents' -> the SHA-256 of every stored copy."""
    start = prefix + STORED_DIR
    return {entry["Key"][len(start) :] for entry in contents if entry["Key"].startswith(start)}


def manifests_to_read(manifest_keys: t.Sequence[str], keep_previous: int) -> list[str]:
    """The newest keep_previous + 1: the current build and the builds retained next to it."""
    return list(manifest_keys[-(keep_previous + 1) :]) if manifest_keys else []


def known_records(
    prefix: str, listing: t.Mapping[str, ListedObject], manifests: t.Iterable[Manifest]
) -> dict[str, ObjectRecord]:
    """Manifest records (newest manifest first) still describing the object the listing shows."""
    known: dict[str, ObjectRecord] = {}
    for manifest in manifests:
        for path, record in manifest.objects.items():
            key = prefix + path
            listed = listing.get(key)
            # Records without a hash (adopted objects) cannot vouch for content: those keys get a HeadObject.
            if key not in known and listed is not None and record.sha256 and record.describes(listed):
                known[key] = record
    return known


def keys_needing_head(
    prefix: str,
    files: t.Iterable[LocalFile],
    listing: t.Mapping[str, ListedObject],
    known: t.Mapping[str, ObjectRecord],
) -> list[str]:
    """Local files whose object exists but no manifest vouches for it (interrupted publish, other tools)."""
    return sorted(prefix + f.path for f in files if prefix + f.path in listing and prefix + f.path not in known)


def record_from_head(response: t.Mapping[str, t.Any]) -> ObjectRecord:
    metadata = {name.lower(): value for name, value in (response.get("Metadata") or {}).items()}
    return ObjectRecord(
        size=int(response.get("ContentLength", 0)),
        etag=normalise_etag(response.get("ETag")),
        sha256=metadata.get(METADATA_SHA256),
        cache_control=response.get("CacheControl"),
        content_type=response.get("ContentType"),
    )


# ---------------------------------------------------------------------------
# Plan


@dataclass
class PublishPlan:
    prefix: str
    files: list[LocalFile]
    asset_uploads: list[LocalFile]
    entry_uploads: list[LocalFile]
    unchanged: list[LocalFile]
    current_records: dict[str, ObjectRecord]
    build_id: str
    manifest_key: str
    new_manifest: bool
    adopted_manifest: Manifest | None
    deletions: list[str]
    obsolete_manifest_keys: list[str]
    retained_keys: list[str]
    # The build published last, as its manifest records it; None before the first publish.
    previous: Manifest | None = None
    source: dict[str, t.Any] | None = None
    # Stored copy key -> live key: objects about to be overwritten that a retained build still needs.
    preserve: dict[str, str] = field(default_factory=dict)
    # Stored copies no retained build needs any more.
    obsolete_stored_keys: list[str] = field(default_factory=list)
    # The build a rollback puts back live.
    restored_from: str | None = None

    @property
    def uploads(self) -> list[LocalFile]:
        """Upload order: everything a new entry document may reference goes first."""
        return self.asset_uploads + self.entry_uploads

    @property
    def bytes_uploaded(self) -> int:
        return sum(f.size for f in self.uploads)

    @property
    def changed(self) -> bool:
        return bool(
            self.uploads
            or self.new_manifest
            or self.adopted_manifest
            or self.deletions
            or self.obsolete_manifest_keys
            or self.obsolete_stored_keys
        )

    @property
    def changed_keys(self) -> list[str]:
        return [self.prefix + f.path for f in self.uploads]

    @property
    def invalidation_paths(self) -> list[str]:
        """Content-hashed files have new URLs; only the others can be stale in a CDN.

        Stale means uploaded now or different from the build published last: a file an interrupted publish
        already uploaded is not uploaded again, but a CDN may still hold the previous build's copy.
        """
        uploaded = {f.path for f in self.uploads}
        return sorted(
            "/" + f.path for f in self.files if not f.immutable and (f.path in uploaded or not self.published_before(f))
        )

    def published_before(self, item: LocalFile) -> bool:
        """Whether the build published last had this file with the same content and headers."""
        if self.previous is None:
            return False
        record = self.previous.objects.get(item.path)
        return record is not None and record.matches(item)

    def manifest(self, etags: t.Mapping[str, str] | None = None) -> Manifest:
        """The manifest of this build; etags maps uploaded paths to the ETag S3 returned."""
        etags = etags or {}
        objects = {}
        for item in self.files:
            known = self.current_records.get(item.path)
            objects[item.path] = ObjectRecord(
                size=item.size,
                etag=normalise_etag(etags.get(item.path) or (known.etag if known else "")),
                sha256=item.sha256,
                cache_control=item.cache_control,
                content_type=item.content_type,
            )
        return Manifest(build_id=self.build_id, objects=objects, source=self.source, restored_from=self.restored_from)


def adopt_unmanaged_objects(
    listing: t.Mapping[str, ListedObject], prefix: str, build_paths: t.Container[str], moment: datetime.datetime
) -> Manifest | None:
    """First publish over objects put there by other tools: record them as the previous build.

    Keys the new build overwrites are left out; they stay retained as part of the new build anyway.
    """
    objects = {
        key[len(prefix) :]: ObjectRecord(size=listed.size, etag=listed.etag)
        for key, listed in listing.items()
        if key[len(prefix) :] not in build_paths
    }
    if not objects:
        return None
    digest = hashlib.sha256()
    for path in sorted(objects):
        digest.update(f"{path}\0{objects[path].etag}\n".encode())
    return Manifest(build_id=f"{format_timestamp(moment)}-{digest.hexdigest()[:12]}", objects=objects, adopted=True)


@dataclass
class FileClassification:
    unchanged: list[LocalFile] = field(default_factory=list)
    asset_uploads: list[LocalFile] = field(default_factory=list)
    entry_uploads: list[LocalFile] = field(default_factory=list)
    current_records: dict[str, ObjectRecord] = field(default_factory=dict)


def classify_files(
    prefix: str,
    files: t.Iterable[LocalFile],
    records: t.Mapping[str, ObjectRecord],
    entry_documents: t.Sequence[str],
) -> FileClassification:
    """Unchanged files (with the record that proves it), other files, entry documents."""
    result = FileClassification()
    for item in sorted(files, key=lambda f: f.path):
        record = records.get(prefix + item.path)
        if record is not None and record.matches(item):
            result.unchanged.append(item)
            result.current_records[item.path] = record
        elif is_entry_document(item.path, entry_documents):
            result.entry_uploads.append(item)
        else:
            result.asset_uploads.append(item)
    return result


def split_builds(
    builds: t.Sequence[tuple[str, Manifest | None]], keep_previous: int
) -> tuple[list[tuple[str, Manifest | None]], list[str]]:
    """(retained builds, keys of obsolete manifests) for builds ordered oldest first, current last."""
    retained = list(builds[-(keep_previous + 1) :])
    return retained, [key for key, dummy in builds[: len(builds) - len(retained)]]


def keys_to_keep(
    prefix: str, build_paths: t.Iterable[str], retained: t.Iterable[tuple[str, Manifest | None]]
) -> set[str]:
    keep = {prefix + path for path in build_paths}
    for key, manifest in retained:
        if manifest is None:
            raise ManifestError(f"Manifest {key} was not read; cannot tell which objects it needs")
        keep.update(prefix + path for path in manifest.objects)
    return keep


def plan_publish(
    prefix: str,
    files: t.Sequence[LocalFile],
    remote: RemoteState,
    keep_previous: int,
    entry_documents: t.Sequence[str],
    now: datetime.datetime,
    source: dict[str, t.Any] | None = None,
    restored_from: str | None = None,
) -> PublishPlan:
    """source: what the build was made from; a new source alone writes a new manifest and uploads nothing.

    restored_from: the build a rollback puts back (its files carry copy_from), recorded in the new manifest.
    """
    records = remote.vouched_records(prefix)
    classified = classify_files(prefix, files, records, entry_documents)
    build_paths = {f.path for f in files}
    latest_key = remote.latest_manifest_key
    moment = next_build_timestamp(now, build_id_from_manifest_key(latest_key) if latest_key else None)
    adopted = None
    if not remote.manifest_keys:
        adopted = adopt_unmanaged_objects(remote.listing, prefix, build_paths, moment)
        if adopted is not None:
            moment = next_build_timestamp(now, adopted.build_id)

    plan = PublishPlan(
        prefix=prefix,
        files=sorted(files, key=lambda f: f.path),
        asset_uploads=classified.asset_uploads,
        entry_uploads=classified.entry_uploads,
        unchanged=classified.unchanged,
        current_records=classified.current_records,
        build_id=f"{format_timestamp(moment)}-{build_hash(files)}",
        manifest_key="",
        new_manifest=True,
        adopted_manifest=adopted,
        deletions=[],
        obsolete_manifest_keys=[],
        retained_keys=[],
        source=source,
        restored_from=restored_from,
    )
    latest = remote.manifests.get(latest_key) if latest_key else None
    plan.previous = latest
    if (
        latest_key
        and latest is not None
        and not plan.uploads
        and (source is None or latest.source == source)
        and plan.manifest().objects == latest.objects
    ):
        plan.new_manifest = False
        plan.source = latest.source
        plan.build_id = latest.build_id
        plan.manifest_key = latest_key
    else:
        plan.manifest_key = manifest_key_for(prefix, plan.build_id)

    builds: list[tuple[str, Manifest | None]] = [(key, remote.manifests.get(key)) for key in remote.manifest_keys]
    if adopted is not None:
        builds.append((manifest_key_for(prefix, adopted.build_id), adopted))
    if plan.new_manifest:
        builds.append((plan.manifest_key, plan.manifest()))
    retained, plan.obsolete_manifest_keys = split_builds(builds, keep_previous)
    if adopted is not None and manifest_key_for(prefix, adopted.build_id) in plan.obsolete_manifest_keys:
        # keep_previous=0: the adopted objects go at once, so there is nothing to record.
        plan.adopted_manifest = None
        plan.obsolete_manifest_keys.remove(manifest_key_for(prefix, adopted.build_id))

    keep = keys_to_keep(prefix, build_paths, retained)
    plan.deletions = sorted(key for key in remote.listing if key not in keep)
    plan.retained_keys = sorted(key for key in remote.listing if key in keep and key[len(prefix) :] not in build_paths)

    # What an upload overwrites is copied aside first when a retained build needs it, so a rollback can put it back.
    needed = {record.sha256 for key, manifest in retained if manifest for record in manifest.objects.values()}
    for item in plan.uploads:
        current = records.get(prefix + item.path)
        if current is None or current.sha256 == item.sha256:
            continue
        if current.sha256 in needed and current.sha256 not in remote.stored:
            plan.preserve.setdefault(stored_copy_key(prefix, current.sha256), prefix + item.path)
    plan.obsolete_stored_keys = sorted(stored_copy_key(prefix, sha) for sha in remote.stored - needed)
    return plan


# ---------------------------------------------------------------------------
# Diff


def describe_record(key: str, record: ObjectRecord | None) -> str:
    if record is None or record.sha256 is None:
        return f"{key} (not published by s3_publish)"
    return f"{key} sha256:{record.sha256[:12]} {record.cache_control}"


def plan_diff(plan: PublishPlan, remote: RemoteState, bucket: str) -> dict[str, str]:
    """One line per key with short hash and Cache-Control; manifests last."""
    prefix = plan.prefix
    records = remote.vouched_records(prefix)

    before = {key: describe_record(key, records.get(key)) for key in remote.listing}
    after = {key: line for key, line in before.items() if key not in plan.deletions}
    new_manifest = plan.manifest()
    for path, record in new_manifest.objects.items():
        after[prefix + path] = describe_record(prefix + path, record)

    before_manifests = list(remote.manifest_keys)
    after_manifests = [key for key in before_manifests if key not in plan.obsolete_manifest_keys]
    if plan.adopted_manifest is not None:
        after_manifests.append(manifest_key_for(prefix, plan.adopted_manifest.build_id))
    if plan.new_manifest:
        after_manifests.append(plan.manifest_key)

    def render(lines: t.Mapping[str, str], manifest_keys: t.Iterable[str]) -> str:
        body = [lines[key] for key in sorted(lines)] + [f"{key} (manifest)" for key in manifest_keys]
        return "".join(line + "\n" for line in body)

    header = f"s3://{bucket}/{prefix}"
    return {
        "before": render(before, before_manifests),
        "after": render(after, after_manifests),
        "before_header": header,
        "after_header": header,
    }


def describe_build(build_id: str, source: t.Mapping[str, t.Any] | None) -> str:
    """A build by its ID, and its commit when its source records one."""
    commit = (source or {}).get("commit")
    return f"{build_id} (commit {commit})" if commit else build_id


def count(number: int, thing: str, things: str = "") -> str:
    return f"{number} {thing if number == 1 else things or thing + 's'}"


def size_text(size: int) -> str:
    if size < 1000:
        return count(size, "byte")
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if round(size, 1) < 1000:
            break
    return f"{size:.1f} {unit}"


def publish_summary(plan: PublishPlan, location: str, check_mode: bool) -> str:
    """What a publish did (or would do, in check mode): the build, and how many files it uploaded, found unchanged
    and deleted; or that the build is live already, and what a publish that only prunes deleted."""
    build = describe_build(plan.build_id, plan.source)
    if not plan.changed:
        return f"{build} is live in {location} already: nothing to publish"
    if not plan.new_manifest:
        pruned = [
            f"{count(number, thing, things)} {whose}"
            for number, thing, things, whose in (
                (len(plan.deletions), "object", "", "no kept build needs"),
                (len(plan.obsolete_manifest_keys), "manifest", "", "of builds no longer kept"),
                (len(plan.obsolete_stored_keys), "stored copy", "stored copies", "no kept build needs"),
            )
            if number
        ]
        deleting = "would delete" if check_mode else "deleted"
        return f"{build} is live in {location} already; {deleting} {' and '.join(pruned)}"
    files = count(len(plan.uploads), "file")
    size = f" ({size_text(plan.bytes_uploaded)})" if plan.uploads else ""
    rest = f"{len(plan.unchanged)} unchanged, {len(plan.deletions)} {'would be deleted' if check_mode else 'deleted'}"
    if check_mode:
        return f"Would publish {build} to {location}, uploading {files}{size}; {rest}"
    return f"Published {build} to {location}: {files} uploaded{size}, {rest}"


def plan_result(plan: PublishPlan) -> dict[str, t.Any]:
    return {
        "changed": plan.changed,
        "uploaded": len(plan.uploads),
        "unchanged": len(plan.unchanged),
        "deleted": len(plan.deletions),
        "retained": len(plan.retained_keys),
        "bytes_uploaded": plan.bytes_uploaded,
        "changed_keys": plan.changed_keys,
        "invalidation_paths": plan.invalidation_paths,
        "deleted_keys": plan.deletions,
        "build_id": plan.build_id,
        "manifest_key": plan.manifest_key,
        "source": plan.source,
        "previous_source": plan.previous.source if plan.previous is not None else None,
    }


# ---------------------------------------------------------------------------
# S3 calls


def map_in_pool(function: t.Callable[[T], R], items: t.Sequence[T], workers: int) -> list[R]:
    """function over items on at most `workers` threads; the first failure stops the rest."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


@AWSRetry.jittered_backoff()
def list_all_objects(client: t.Any, bucket: str, prefix: str) -> list[dict[str, t.Any]]:
    paginator = client.get_paginator("list_objects_v2")
    return paginator.paginate(Bucket=bucket, Prefix=prefix).build_full_result().get("Contents", [])


def read_remote_state(
    client: t.Any, bucket: str, prefix: str, files: t.Sequence[LocalFile], keep_previous: int, workers: int
) -> RemoteState:
    contents = list_all_objects(client, bucket, prefix)
    listing, manifest_keys = split_listing(contents, prefix)
    remote = RemoteState(listing=listing, manifest_keys=manifest_keys, stored=split_stored_copies(contents, prefix))

    def read_manifest(key: str) -> Manifest:
        body = client.get_object(Bucket=bucket, Key=key, aws_retry=True)["Body"].read()
        return Manifest.from_json(body, key)

    wanted = manifests_to_read(manifest_keys, keep_previous)
    remote.manifests = dict(zip(wanted, map_in_pool(read_manifest, wanted, workers)))

    known = known_records(prefix, listing, remote.manifests_newest_first())
    to_head = keys_needing_head(prefix, files, listing, known)

    def head(key: str) -> ObjectRecord:
        return record_from_head(client.head_object(Bucket=bucket, Key=key, aws_retry=True))

    remote.head_records = dict(zip(to_head, map_in_pool(head, to_head, workers)))
    return remote


def upload_arguments(acl: str | None, encryption: str | None, kms_key_id: str | None) -> dict[str, str]:
    """PutObject arguments shared by every upload; no ACL unless asked (buckets may disable ACLs)."""
    arguments = {}
    if acl:
        arguments["ACL"] = acl
    if encryption:
        arguments["ServerSideEncryption"] = encryption
    if kms_key_id:
        arguments["SSEKMSKeyId"] = kms_key_id
    return arguments


def upload_file(client: t.Any, bucket: str, key: str, item: LocalFile, extra: t.Mapping[str, str]) -> str:
    """PutObject with the file in memory, so a retried call sends the whole body again; returns the ETag."""
    with open(item.source, "rb") as stream:
        body = stream.read()
    response = client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType=item.content_type,
        CacheControl=item.cache_control,
        Metadata={METADATA_SHA256: item.sha256},
        aws_retry=True,
        **extra,
    )
    return normalise_etag(response.get("ETag"))


def copy_object(
    client: t.Any, bucket: str, key: str, copy_from: str, extra: t.Mapping[str, str], item: LocalFile | None = None
) -> str:
    """CopyObject inside the bucket; with item, the copy gets the item's headers and sha256. Returns the ETag."""
    arguments: dict[str, t.Any] = {"MetadataDirective": "COPY"}
    if item is not None:
        arguments = {
            "MetadataDirective": "REPLACE",
            "ContentType": item.content_type,
            "CacheControl": item.cache_control,
            "Metadata": {METADATA_SHA256: item.sha256},
        }
    response = client.copy_object(
        Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": copy_from}, aws_retry=True, **arguments, **extra
    )
    return normalise_etag(response.get("CopyObjectResult", {}).get("ETag"))


def put_file(client: t.Any, bucket: str, key: str, item: LocalFile, extra: t.Mapping[str, str]) -> str:
    """Upload the file, or put it back from its copy in the bucket; returns the ETag."""
    if item.copy_from:
        return copy_object(client, bucket, key, item.copy_from, extra, item)
    return upload_file(client, bucket, key, item, extra)


def put_manifest(client: t.Any, bucket: str, key: str, manifest: Manifest, extra: t.Mapping[str, str]) -> None:
    arguments = {name: value for name, value in extra.items() if name != "ACL"}
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=manifest.to_json().encode(),
        ContentType="application/json",
        CacheControl="no-store",
        aws_retry=True,
        **arguments,
    )


def delete_keys(client: t.Any, bucket: str, keys: t.Sequence[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH_SIZE):
        batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH_SIZE]]
        response = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}, aws_retry=True)
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            message = (
                f"Could not delete {len(errors)} object(s), first {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message')}"
            )
            if first.get("Code") == "AccessDenied":
                raise DeleteDenied(message, bucket, first.get("Key"))
            raise PublishError(message)


def execute_plan(client: t.Any, bucket: str, plan: PublishPlan, extra: t.Mapping[str, str], workers: int) -> None:
    """Adopted manifest, copies of what is overwritten, assets, entry documents, new manifest, then deletions: each
    step only after the last."""
    if plan.adopted_manifest is not None:
        put_manifest(
            client, bucket, manifest_key_for(plan.prefix, plan.adopted_manifest.build_id), plan.adopted_manifest, extra
        )

    copies = {name: value for name, value in extra.items() if name != "ACL"}
    map_in_pool(
        lambda stored: copy_object(client, bucket, stored, plan.preserve[stored], copies),
        sorted(plan.preserve),
        workers,
    )

    etags: dict[str, str] = {}
    for batch in (plan.asset_uploads, plan.entry_uploads):
        batch_etags = map_in_pool(
            lambda item: put_file(client, bucket, plan.prefix + item.path, item, extra), batch, workers
        )
        etags.update(zip((item.path for item in batch), batch_etags))

    if plan.new_manifest:
        put_manifest(client, bucket, plan.manifest_key, plan.manifest(etags), extra)
    delete_keys(client, bucket, plan.deletions + plan.obsolete_manifest_keys + plan.obsolete_stored_keys)
