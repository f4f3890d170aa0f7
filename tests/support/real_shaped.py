"""A frontend build shaped like the real Flora frontend's, for the publish benchmarks and tests.

The real build has 55 files and about 53 MB: 33 content-hashed files under assets/ (Vite's chunk graph),
unhashed public images of up to several MB, and index.html. This one has the same counts (21 unhashed files) and
about 51 MB. Its chunk graph is an entry that imports ten route chunks, each of which imports a shared component
chunk and the vendor chunk. As in Rollup, a chunk's name carries the hash of its content, which names the chunks it
imports, so a change to the shared component renames it, the ten routes and the entry: twelve chunks, and
index.html, which loads the entry. The chunks are valid JavaScript modules.
"""

from __future__ import annotations

import base64
import hashlib
import random
import shutil
from pathlib import Path

MB = 1024 * 1024

ROUTES = 10
# (name, size in bytes, imports): leaves first.
CHUNKS: list[tuple[str, int, list[str]]] = [
    ("vendor", 620 * 1024, []),
    ("ProductCard", 36 * 1024, ["vendor"]),
    *[(f"Route{n}", (40 + 8 * n) * 1024, ["ProductCard", "vendor"]) for n in range(ROUTES)],
    *[(f"Lazy{n}", (20 + 12 * n) * 1024, ["vendor"]) for n in range(15)],
    ("index", 180 * 1024, [f"Route{n}" for n in range(ROUTES)] + ["vendor"]),
]
STYLES = [("index", 96 * 1024, "css"), ("Route0", 24 * 1024, "css")]
FONTS = [("inter-latin", 48 * 1024, "woff2"), ("inter-latin-ext", 36 * 1024, "woff2"), ("icons", 20 * 1024, "svg")]
# Unhashed public files, in MB: the hero and product photos the app ships as they are.
IMAGES_MB = [6.0, 5.5, 5.0, 4.5, 4.0, 3.5, 3.0, 3.0, 2.5, 2.0, 2.0, 1.5, 1.2, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
CHANGED = "ProductCard"


def content_hash(data: bytes) -> str:
    """Eight characters of the content's hash, as Vite names chunks (with a digit or capital, as its names have)."""
    name = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()[:8]
    return name if any(c.isdigit() or c.isupper() for c in name) else hashlib.sha256(data).hexdigest()[:8]


def body(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def generate(dest: Path, version: int = 0) -> dict[str, int]:
    """Write the build into dest, afresh as Vite does (every file a new mtime); version changes the component.

    Returns the number of files per kind.
    """
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "assets").mkdir(parents=True)
    (dest / "images").mkdir()
    names: dict[str, str] = {}
    for name, size, imports in CHUNKS:
        seed = f"{name}:{version if name == CHANGED else 0}"
        text = "".join(f'import "./{names[dependency]}";\n' for dependency in imports)
        data = f'{text}export const {name} = "{base64.b64encode(body(seed, size * 3 // 4)).decode()}";\n'.encode()
        names[name] = f"{name}-{content_hash(data)}.js"
        (dest / "assets" / names[name]).write_bytes(data)
    hashed = dict(names)
    for name, size, extension in STYLES + FONTS:
        data = body(f"{name}.{extension}", size)
        hashed[f"{name}.{extension}"] = f"{name}-{content_hash(data)}.{extension}"
        (dest / "assets" / hashed[f"{name}.{extension}"]).write_bytes(data)
    for number, size in enumerate(IMAGES_MB):
        (dest / "images" / f"product-{number:02d}.jpg").write_bytes(body(f"image{number}", int(size * MB)))
    (dest / "flora-logo.png").write_bytes(body("logo", 24 * 1024))
    (dest / "index.html").write_text(
        "<!doctype html><html><head>"
        '<link rel="icon" href="/flora-logo.png">'
        f'<script type="module" crossorigin src="/assets/{hashed["index"]}"></script>'
        f'<link rel="modulepreload" crossorigin href="/assets/{hashed["vendor"]}">'
        f'<link rel="stylesheet" crossorigin href="/assets/{hashed["index.css"]}">'
        '</head><body><div id="root"></div><img src="/images/product-00.jpg"></body></html>'
    )
    return {"hashed": len(hashed), "unhashed": len(IMAGES_MB) + 1, "files": len(hashed) + len(IMAGES_MB) + 2}


def build_size(dest: Path) -> int:
    return sum(path.stat().st_size for path in dest.rglob("*") if path.is_file())
