"""Collection artifacts of the collections the `ansible` package bundles, for installs that cannot reach Galaxy.

The `ansible` package installs trimmed copies of its collections: their FILES.json still lists what was left out,
so ansible-galaxy would refuse a tarball of them as it is. repack() writes an artifact of the files that are there,
with FILES.json and MANIFEST.json's checksum of it made anew, which ansible-galaxy installs as it would one
downloaded from Galaxy.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import ansible_collections

BUNDLED = Path(next(path for path in ansible_collections.__path__ if "site-packages" in path))


def bundled(name: str) -> Path:
    namespace, collection = name.split(".")
    return BUNDLED / namespace / collection


def version(name: str) -> str:
    return json.loads((bundled(name) / "MANIFEST.json").read_text())["collection_info"]["version"]


def _entry(name: str, path: Path) -> dict:
    if path.is_dir():
        return {"name": name, "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"name": name, "ftype": "file", "chksum_type": "sha256", "chksum_sha256": digest, "format": 1}


def repack(name: str, directory: Path) -> Path:
    """An installable artifact <namespace>-<name>-<version>.tar.gz of the bundled collection, in ``directory``."""
    root = bundled(name)
    paths = sorted(
        path
        for path in root.rglob("*")
        if "__pycache__" not in path.parts and path.name not in ("FILES.json", "MANIFEST.json")
    )
    files = {"files": [_entry(".", root)] + [_entry(str(p.relative_to(root)), p) for p in paths], "format": 1}
    files_json = json.dumps(files, indent=4).encode()
    manifest = json.loads((root / "MANIFEST.json").read_text())
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    manifest_json = json.dumps(manifest, indent=4).encode()
    artifact = directory / f"{name.replace('.', '-')}-{manifest['collection_info']['version']}.tar.gz"
    with tarfile.open(artifact, "w:gz") as archive:
        for member_name, data in (("MANIFEST.json", manifest_json), ("FILES.json", files_json)):
            info = tarfile.TarInfo(member_name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
        for path in paths:
            archive.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return artifact
