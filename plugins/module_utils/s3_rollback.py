# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Put a build the bucket still holds back live, from what s3_publish keeps.

Every retained build is complete in the bucket: its content-hashed files under their own names, and every file
a later publish overwrote as a copy under ``<prefix>.publish/objects/<sha256>``. A rollback is a publish whose
files come from those copies: the same plan (entry documents last, then the manifest, then what no retained build
needs), a new manifest recording the build's source and ``restored_from``.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import typing as t

from ansible_collections.flora.deploy.plugins.module_utils.frontend_build import ReferencedFile, resolve_references
from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    INDEX_DOCUMENT,
    LocalFile,
    Manifest,
    PublishError,
    PublishPlan,
    RemoteState,
    count,
    describe_build,
    plan_publish,
    stored_copy_key,
)

# A commit given by its abbreviation must be at least this long, as git's shortest default.
MIN_COMMIT_ABBREVIATION = 7
COMMIT_ID = re.compile(r"[0-9a-fA-F]{7,40}(-dirty)?")


class RollbackError(PublishError):
    """A rollback that cannot go ahead; the message is meant for the user."""


def describe_manifest(manifest: Manifest) -> str:
    return describe_build(manifest.build_id, manifest.source)


def describe_builds(builds: t.Sequence[Manifest]) -> str:
    return ", ".join(describe_manifest(build) for build in builds) or "none"


def rollback_summary(plan: PublishPlan, target: Manifest, location: str, check_mode: bool) -> str:
    """What a rollback did (or would do, in check mode), naming the build it puts back live and its commit, when
    its manifest records one."""
    build = describe_manifest(target)
    if not plan.new_manifest:
        return f"{build} is live in {location} already: nothing to put back"
    copies = len(plan.uploads)
    files = count(copies, "file")
    if check_mode:
        doing = f"copying {files} inside the bucket" if copies else "writing only its manifest (its files are live)"
        return f"Would put {build} back live in {location}, {doing}"
    done = f"{files} copied inside the bucket" if copies else "its files were live, only its manifest was written"
    return f"Put {build} back live in {location}: {done}"


def commit_matches(manifest: Manifest, commit: str) -> bool:
    recorded = str((manifest.source or {}).get("commit") or "")
    return bool(recorded) and (recorded == commit or recorded.removesuffix("-dirty").startswith(commit))


def select_target(
    remote: RemoteState, location: str, build_id: str | None = None, commit: str | None = None
) -> Manifest:
    """The build to put back: build_id, else the newest retained build of commit, else the previous build.

    The previous build is the newest build before the live one that serves something else; when the live build
    is itself a rollback, before the build it put back, so rolling back twice goes two builds back.
    """
    builds = remote.manifests_newest_first()
    if not builds:
        raise RollbackError(f"Nothing has been published to {location}: there is no build to roll back to")
    live = builds[0]
    if build_id:
        for build in builds:
            if build.build_id == build_id.removesuffix(".json").rsplit("/", 1)[-1]:
                return build
        raise RollbackError(f"Build {build_id} is not one of the builds {location} keeps: {describe_builds(builds)}")
    if commit:
        if len(commit) < MIN_COMMIT_ABBREVIATION:
            raise RollbackError(f"commit {commit} is too short: give at least {MIN_COMMIT_ABBREVIATION} characters")
        if not COMMIT_ID.fullmatch(commit):
            raise RollbackError(
                f"{commit!r} is not a commit ID (7 to 40 hexadecimal characters) nor a build ID "
                f"(20250301T120000.123456Z-3f2a9c1b7d4e)"
            )
        for build in builds:
            if commit_matches(build, commit):
                return build
        raise RollbackError(
            f"No build of commit {commit} is kept in {location}; the builds it keeps are {describe_builds(builds)}. "
            "Publish that commit instead"
        )
    start = 1
    if live.restored_from:
        restored = [number for number, build in enumerate(builds) if build.build_id == live.restored_from]
        start = restored[0] + 1 if restored else 1
    for build in builds[start:]:
        if not build.serves_the_same(live) and not build.adopted:
            return build
    restore = f", a rollback to {live.restored_from}," if live.restored_from else ""
    raise RollbackError(
        f"{location} keeps no build before the live one, {describe_manifest(live)}{restore} to roll back to. "
        f"The builds it keeps: {describe_builds(builds)}; name one by its build ID or commit to put it back"
    )


def files_to_restore(prefix: str, target: Manifest, remote: RemoteState, location: str) -> list[LocalFile]:
    """The target's files; those the live objects do not already match carry the stored copy to put back."""
    records = remote.vouched_records(prefix)
    files, missing = [], []
    for path, record in sorted(target.objects.items()):
        if not record.sha256 or record.cache_control is None or record.content_type is None:
            missing.append(path)
            continue
        item = LocalFile(
            path=path,
            source="",
            size=record.size,
            sha256=record.sha256,
            content_type=record.content_type,
            cache_control=record.cache_control,
        )
        current = records.get(prefix + path)
        if current is not None and current.matches(item):
            files.append(item)
        elif record.sha256 in remote.stored:
            files.append(dataclasses.replace(item, copy_from=stored_copy_key(prefix, record.sha256)))
        else:
            missing.append(path)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise RollbackError(
            f"Build {describe_manifest(target)} cannot be put back: {location} no longer holds {len(missing)} of its "
            f"files ({shown}). Nothing was changed; publish its commit again instead"
        )
    return files


def plan_rollback(
    prefix: str,
    remote: RemoteState,
    keep_previous: int,
    entry_documents: t.Sequence[str],
    now: datetime.datetime,
    location: str,
    build_id: str | None = None,
    commit: str | None = None,
) -> tuple[PublishPlan, Manifest]:
    """The publish that puts the target build back, and the target; nothing to do when it is already live."""
    target = select_target(remote, location, build_id, commit)
    files = files_to_restore(prefix, target, remote, location)
    plan = plan_publish(
        prefix,
        files,
        remote,
        keep_previous,
        entry_documents,
        now,
        source=target.source or {},
        restored_from=target.build_id,
    )
    return plan, target


def index_source_key(prefix: str, files: t.Sequence[LocalFile]) -> str:
    """Where the target's index.html can be read now: its stored copy, or the live key when that matches."""
    for item in files:
        if item.path == INDEX_DOCUMENT:
            return item.copy_from or prefix + item.path
    raise RollbackError(f"The build has no {INDEX_DOCUMENT}; it cannot be put back")


def referenced_by_index(html: str, target: Manifest, base: str, where: str) -> list[ReferencedFile]:
    """The target's files its index.html references, with the headers and content its manifest records."""
    referenced = []
    for path, url in resolve_references(html, target.objects, base, where):
        record = target.objects[path]
        referenced.append(
            ReferencedFile(
                path=path,
                url=url,
                cache_control=t.cast(str, record.cache_control),
                content_type=t.cast(str, record.content_type),
                sha256=t.cast(str, record.sha256),
                size=record.size,
            )
        )
    return referenced


def index_entry(target: Manifest) -> dict[str, t.Any]:
    record = target.objects[INDEX_DOCUMENT]
    return {
        "path": INDEX_DOCUMENT,
        "sha256": record.sha256,
        "size": record.size,
        "cache_control": record.cache_control,
        "content_type": record.content_type,
    }
