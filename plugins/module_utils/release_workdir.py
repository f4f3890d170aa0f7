# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backend release's directory on the host, for flora.deploy.release_dir.

A commit is exported from the repository cache into a work directory beside the releases, installed and built
there, and renamed to its release directory once built, with a marker (.flora-release) written last inside it:
a release directory without its marker never exists, and the live release is never touched.

An incremental TypeScript build carries the build output of the release it replaces (the live one) into the work
directory, with tsc's build info inside it, so tsc compiles only what changed. tsc never deletes what it emitted
for a source that no longer exists, so before the build the carried output keeps only the files tsc emits for the
new commit's sources (computed from `tsc --showConfig`, which resolves the project's tsconfig): the output of a
deleted or renamed source does not survive into the new release.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import subprocess
import typing as t

MARKER = ".flora-release"
DECLARATION_SUFFIXES = (".d.ts", ".d.mts", ".d.cts")


class ReleaseError(Exception):
    pass


def work_dir(releases_dir: str, commit: str) -> str:
    """Where a commit is built before it becomes releases_dir/<commit>; dot-named, so never taken for a release."""
    return os.path.join(releases_dir, f".{commit}.partial")


def is_built(release_dir: str) -> bool:
    return os.path.isfile(os.path.join(release_dir, MARKER))


def export_commit(repo: str, commit: str, work: str) -> None:
    """A fresh ``work`` directory holding the commit's files (``git archive``), whatever an interrupted build left."""
    shutil.rmtree(work, ignore_errors=True)
    os.mkdir(work, 0o750)
    archive = subprocess.Popen(
        ["git", f"--git-dir={repo}", "archive", "--format=tar", commit],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    unpack = subprocess.run(["tar", "-x", "-C", work], stdin=archive.stdout, capture_output=True, check=False)
    archive.stdout.close()
    archive_err = archive.stderr.read().decode("utf-8", "replace").strip()
    archive.wait()
    if archive.returncode != 0:
        raise ReleaseError(f"git archive {commit} failed: {archive_err}")
    if unpack.returncode != 0:
        raise ReleaseError(f"unpacking {commit} into {work} failed: {unpack.stderr.decode('utf-8', 'replace').strip()}")


def read_package(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            package = json.load(handle)
    except (OSError, ValueError) as e:
        raise ReleaseError(f"cannot read {path}: {e}") from e
    if not isinstance(package, dict):
        raise ReleaseError(f"{path} is not a JSON object")
    return package


def installed_pnpm_version(pnpm: str | None) -> str:
    """The version of the pnpm at ``pnpm`` (<package>/bin/pnpm.cjs of npm's global install), '' when unknown."""
    if not pnpm:
        return ""
    package_json = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(pnpm))), "package.json")
    try:
        with open(package_json, encoding="utf-8") as handle:
            return str(json.load(handle)["version"])
    except (OSError, ValueError, KeyError):
        return ""


def write_marker(directory: str, commit: str, ref: str | None) -> None:
    """The marker that makes a directory a built release."""
    marker = os.path.join(directory, MARKER)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"commit": commit, "ref": ref}) + "\n")
    os.chmod(marker, 0o640)


def publish(work: str, release_dir: str, commit: str, ref: str | None) -> None:
    """Write the marker last inside the work directory and rename it to the release directory: both at once."""
    write_marker(work, commit, ref)
    os.rename(work, release_dir)


def _normal(path: str) -> str:
    """A path relative to the project's directory, normalised ('./dist/' -> 'dist')."""
    return posixpath.normpath(path.replace(os.sep, "/"))


def _common_dir(paths: t.Sequence[str]) -> str:
    directories = [posixpath.dirname(path) for path in paths]
    if not directories:
        return "."
    common = posixpath.commonpath(directories) if all(directories) else ""
    return common or "."


def _output_name(source: str, options: dict) -> str | None:
    """The JavaScript file tsc emits for ``source``; None for a source it emits nothing for."""
    if source.endswith(DECLARATION_SUFFIXES):
        return None
    stem, extension = posixpath.splitext(source)
    if extension == ".ts":
        return stem + ".js"
    if extension == ".tsx":
        return stem + (".jsx" if str(options.get("jsx", "")).lower() == "preserve" else ".js")
    if extension == ".mts":
        return stem + ".mjs"
    if extension == ".cts":
        return stem + ".cjs"
    if extension in (".js", ".jsx", ".mjs", ".cjs") and options.get("allowJs"):
        return source
    return None


def _declaration_name(javascript: str) -> str:
    stem, extension = posixpath.splitext(javascript)
    return stem + {".mjs": ".d.mts", ".cjs": ".d.cts"}.get(extension, ".d.ts")


def expected_outputs(config: dict) -> tuple[str, set[str]] | None:
    """From `tsc --showConfig`'s output: the output directory and every file tsc emits into it, relative to the
    project's directory. None when the project has no outDir (its output lies beside its sources)."""
    options = config.get("compilerOptions") or {}
    if not options.get("outDir"):
        return None
    out_dir = _normal(options["outDir"])
    sources = [_normal(path) for path in config.get("files") or []]
    emitting = [source for source in sources if _output_name(source, options) is not None]
    root_dir = _normal(options["rootDir"]) if options.get("rootDir") else _common_dir(emitting)
    declaration_dir = _normal(options["declarationDir"]) if options.get("declarationDir") else out_dir
    expected = set()
    for source in emitting:
        relative = posixpath.relpath(_output_name(source, options), root_dir)
        javascript = posixpath.normpath(posixpath.join(out_dir, relative))
        expected.add(javascript)
        if options.get("sourceMap"):
            expected.add(javascript + ".map")
        if options.get("declaration") or options.get("composite"):
            declaration = posixpath.normpath(posixpath.join(declaration_dir, _declaration_name(relative)))
            expected.add(declaration)
            if options.get("declarationMap"):
                expected.add(declaration + ".map")
    return out_dir, expected


def prune_outputs(project: str, out_dir: str, keep: set[str]) -> list[str]:
    """Delete every file under project/out_dir whose path relative to ``project`` is not in ``keep``, and the
    directories left empty; returns what was deleted, relative to ``project``."""
    removed = []
    root = os.path.join(project, out_dir)
    for top, dirs, files in os.walk(root, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            path = os.path.join(top, name)
            relative = _normal(os.path.relpath(path, project))
            if relative not in keep:
                os.unlink(path)
                removed.append(relative)
        if top != root and not os.listdir(top):
            os.rmdir(top)
    return sorted(removed)


def carry_build_output(
    previous_app: str, work_app: str, build_info: str, show_config: t.Callable[[], dict]
) -> tuple[bool, str, list[str]]:
    """Carry the previous release's build output into the work directory for an incremental build.

    ``previous_app`` and ``work_app`` are the backend's directory in each; ``build_info`` tsc's build info file,
    relative to it, inside the output directory; ``show_config()`` runs `tsc --showConfig` in the work directory.
    Returns (carried, why not / from where, the stale outputs removed). Nothing is carried when the previous
    release has no build info (it was built in full), or the project's output does not hold the build info.
    """
    if not os.path.isfile(os.path.join(previous_app, build_info)):
        return False, f"{os.path.join(previous_app, build_info)} does not exist", []
    try:
        outputs = expected_outputs(show_config())
    except (ReleaseError, ValueError) as e:
        return False, f"tsc --showConfig failed: {e}", []
    if outputs is None:
        return False, "the project has no outDir", []
    out_dir, expected = outputs
    if not _normal(build_info).startswith(out_dir + "/"):
        return False, f"the build info {build_info} is not inside the output directory {out_dir}", []
    source = os.path.join(previous_app, out_dir)
    target = os.path.join(work_app, out_dir)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, symlinks=True)
    removed = prune_outputs(work_app, out_dir, expected | {_normal(build_info)})
    return True, source, removed
