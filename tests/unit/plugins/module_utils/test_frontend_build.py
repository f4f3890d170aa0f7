from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ansible_collections.flora.deploy.plugins.module_utils.frontend_build import (
    BuildCheckError,
    check_frontend_build,
    find_references,
    normalise_base,
    parse_srcset,
    resolve_reference,
)
from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    CACHE_ENTRY_DOCUMENT,
    CACHE_IMMUTABLE,
    CACHE_REVALIDATE,
    BuildDirectoryError,
    compile_cache_rules,
)

# What Vite 7 writes for the fixture app, plus the references a bigger app has.
VITE_INDEX = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <link rel="icon" type="image/png" href="/flora-logo.png" />
    <link rel="preconnect" href="https://fonts.example.com" />
    <link rel="canonical" href="/shop" />
    <title>Flora</title>
    <script type="module" crossorigin src="/assets/index-BH4osBhN.js"></script>
    <link rel="modulepreload" crossorigin href="/assets/vendor-C1a2b3c4.js">
    <link rel="stylesheet" crossorigin href="/assets/index-Ds69BtTA.css">
    <!-- <script src="/assets/commented-out.js"></script> -->
  </head>
  <body>
    <div id="root"></div>
    <a href="/about">About</a>
    <img src="data:image/png;base64,iVBORw0KGgo=" alt="">
    <script src="https://js.stripe.com/v3/"></script>
  </body>
</html>
"""


def write(root: Path, path: str, content: str | bytes = "x") -> Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    target.write_bytes(content)
    return target


def vite_build(root: Path) -> Path:
    write(root, "index.html", VITE_INDEX)
    for path in ("assets/index-BH4osBhN.js", "assets/vendor-C1a2b3c4.js", "assets/index-Ds69BtTA.css"):
        write(root, path)
    write(root, "flora-logo.png", b"\x89PNG")
    write(root, "images/Roses.jpg", b"\xff\xd8")
    return root


# ---------------------------------------------------------------------------
# Parsing


def test_find_references_keeps_what_a_browser_fetches_while_loading():
    references, base_href = find_references(VITE_INDEX)
    assert [(r.element, r.attribute, r.url) for r in references] == [
        ("link", "href", "/flora-logo.png"),
        ("script", "src", "/assets/index-BH4osBhN.js"),
        ("link", "href", "/assets/vendor-C1a2b3c4.js"),
        ("link", "href", "/assets/index-Ds69BtTA.css"),
        ("img", "src", "data:image/png;base64,iVBORw0KGgo="),
        ("script", "src", "https://js.stripe.com/v3/"),
    ]
    assert base_href is None


@pytest.mark.parametrize(
    "html, expected",
    [
        ('<link rel="shortcut icon" href="/favicon.ico">', ["/favicon.ico"]),
        ('<LINK REL="Stylesheet" HREF="/a.css">', ["/a.css"]),
        ('<link rel="manifest" href="/site.webmanifest">', ["/site.webmanifest"]),
        ('<link rel="apple-touch-icon" href="apple.png">', ["apple.png"]),
        ('<link rel="preload" as="font" href="/fonts/a.woff2">', ["/fonts/a.woff2"]),
        ('<link rel="alternate" href="/feed.xml"><link rel="dns-prefetch" href="//cdn">', []),
        ('<link rel="stylesheet">', []),
        ('<script src=""></script><script>import("/x.js")</script>', []),
        ('<img src="/a.png" srcset="/a-2x.png 2x, /a-3x.png 3x"/>', ["/a.png", "/a-2x.png", "/a-3x.png"]),
        ('<picture><source srcset="/b.webp" type="image/webp"></picture>', ["/b.webp"]),
        ('<video src="/v.mp4" poster="/p.jpg"></video>', ["/v.mp4", "/p.jpg"]),
        ('<img src="/a&amp;b.png">', ["/a&b.png"]),
        ('<a href="/about">a</a><iframe src="/embed"></iframe>', []),
    ],
)
def test_find_references_by_element(html, expected):
    assert [reference.url for reference in find_references(html)[0]] == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("a.png", ["a.png"]),
        ("a.png 1x, b.png 2x", ["a.png", "b.png"]),
        ("a.png 480w,b.png 800w", ["a.png", "b.png"]),
        # As in the HTML standard: a comma inside a URL is part of it; only trailing commas end it.
        ("a.png,b.png", ["a.png,b.png"]),
        ("a.png, b.png", ["a.png", "b.png"]),
        ("data:image/png;base64,AAA= 1x, /b.png 2x", ["data:image/png;base64,AAA=", "/b.png"]),
        ("  ,  ", []),
    ],
)
def test_parse_srcset(value, expected):
    assert parse_srcset(value) == expected


def test_base_href_is_found():
    assert find_references('<base href="/shop/"><script src="app.js"></script>')[1] == "/shop/"


# ---------------------------------------------------------------------------
# Resolving


@pytest.mark.parametrize(
    "url, expected",
    [
        ("/assets/index-BH4osBhN.js", "assets/index-BH4osBhN.js"),
        ("./assets/index-BH4osBhN.js", "assets/index-BH4osBhN.js"),
        ("assets/index-BH4osBhN.js", "assets/index-BH4osBhN.js"),
        ("/assets/../flora-logo.png", "flora-logo.png"),
        ("../flora-logo.png", "flora-logo.png"),
        ("/images/My%20Roses.jpg?v=2#top", "images/My Roses.jpg"),
        ("https://cdn.example.com/x.js", None),
        ("http://cdn.example.com/x.js", None),
        ("//cdn.example.com/x.js", None),
        ("data:image/svg+xml,%3Csvg%3E", None),
        ("blob:https://site/1234", None),
        ("javascript:void(0)", None),
    ],
)
def test_resolve_reference_like_a_browser(url, expected):
    assert resolve_reference(url, "/") == expected


def test_resolve_reference_under_a_base_path():
    assert resolve_reference("/shop/assets/a.js", "/shop/") == "assets/a.js"
    assert resolve_reference("assets/a.js", "/shop/") == "assets/a.js"
    with pytest.raises(BuildCheckError, match="references /api/config.js, which is outside the base path /shop/"):
        resolve_reference("/api/config.js", "/shop/")


def test_resolve_reference_follows_base_href():
    assert resolve_reference("app.js", "/", "/static/") == "static/app.js"
    assert resolve_reference("app.js", "/", "https://cdn.example.com/") is None


@pytest.mark.parametrize("given, expected", [("", "/"), ("/", "/"), ("app", "/app/"), ("/app/", "/app/"), (None, "/")])
def test_normalise_base(given, expected):
    assert normalise_base(given) == expected


# ---------------------------------------------------------------------------
# Checking a build


def test_check_vite_build_returns_references_with_their_headers(tmp_path):
    build = vite_build(tmp_path)

    def content(path):
        data = (build / path).read_bytes()
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    report = check_frontend_build(str(build))
    assert report.files == 6
    assert report.index == {
        "path": "index.html",
        "sha256": hashlib.sha256(VITE_INDEX.encode()).hexdigest(),
        "size": len(VITE_INDEX.encode()),
        "cache_control": CACHE_ENTRY_DOCUMENT,
        "content_type": "text/html; charset=utf-8",
    }
    assert [item.to_dict() for item in report.referenced] == [
        {
            "path": "assets/index-BH4osBhN.js",
            "url": "/assets/index-BH4osBhN.js",
            "cache_control": CACHE_IMMUTABLE,
            "content_type": "text/javascript; charset=utf-8",
            **content("assets/index-BH4osBhN.js"),
        },
        {
            "path": "assets/index-Ds69BtTA.css",
            "url": "/assets/index-Ds69BtTA.css",
            "cache_control": CACHE_IMMUTABLE,
            "content_type": "text/css; charset=utf-8",
            **content("assets/index-Ds69BtTA.css"),
        },
        {
            "path": "assets/vendor-C1a2b3c4.js",
            "url": "/assets/vendor-C1a2b3c4.js",
            "cache_control": CACHE_IMMUTABLE,
            "content_type": "text/javascript; charset=utf-8",
            **content("assets/vendor-C1a2b3c4.js"),
        },
        {
            "path": "flora-logo.png",
            "url": "/flora-logo.png",
            "cache_control": CACHE_REVALIDATE,
            "content_type": "image/png",
            **content("flora-logo.png"),
        },
    ]
    assert set(report.to_result()) == {"src", "files", "index", "referenced"}


def test_check_uses_the_publish_rules(tmp_path):
    vite_build(tmp_path)
    rules = compile_cache_rules([{"glob": "*.png", "cache_control": "public,max-age=3600"}])
    report = check_frontend_build(str(tmp_path), cache_rules=rules, content_types={".png": "image/x-flora"})
    logo = next(item for item in report.referenced if item.path == "flora-logo.png")
    assert (logo.cache_control, logo.content_type) == ("public,max-age=3600", "image/x-flora")


def test_each_file_is_listed_once(tmp_path):
    write(tmp_path, "index.html", '<script src="/a.js"></script><link rel="modulepreload" href="./a.js">')
    write(tmp_path, "a.js")
    assert [(item.path, item.url) for item in check_frontend_build(str(tmp_path)).referenced] == [("a.js", "/a.js")]


def test_missing_references_are_all_named(tmp_path):
    vite_build(tmp_path)
    (tmp_path / "assets/index-BH4osBhN.js").unlink()
    (tmp_path / "flora-logo.png").unlink()
    with pytest.raises(BuildCheckError) as caught:
        check_frontend_build(str(tmp_path))
    assert caught.value.missing == ["flora-logo.png", "assets/index-BH4osBhN.js"]
    assert str(caught.value) == (
        f"index.html in {tmp_path} references 2 file(s) the build does not have: flora-logo.png (<link href>), "
        "assets/index-BH4osBhN.js (<script src>); refusing to publish an incomplete build"
    )


def test_a_directory_is_not_a_file(tmp_path):
    write(tmp_path, "index.html", '<script src="/assets/"></script>')
    write(tmp_path, "assets/a.js")
    with pytest.raises(BuildCheckError) as caught:
        check_frontend_build(str(tmp_path))
    assert caught.value.missing == ["assets/"]


def test_encoded_reference_finds_the_file(tmp_path):
    write(tmp_path, "index.html", '<img src="/images/My%20Roses.jpg">')
    write(tmp_path, "images/My Roses.jpg")
    assert [item.path for item in check_frontend_build(str(tmp_path)).referenced] == ["images/My Roses.jpg"]


def test_references_outside_the_base_fail(tmp_path):
    write(tmp_path, "index.html", '<script src="/other/a.js"></script>')
    with pytest.raises(BuildCheckError, match="outside the base path /shop/"):
        check_frontend_build(str(tmp_path), base="shop")


@pytest.mark.parametrize(
    "layout, message",
    [
        (None, "does not exist"),
        ({}, "contains no files"),
        ({"assets/index-AbCd1234.js": "x"}, "has no index.html; refusing to publish an incomplete build"),
        ({"index.html": "", ".publish/manifests/x.json": "{}"}, ".publish/ is reserved"),
    ],
)
def test_bad_build_directories(tmp_path, layout, message):
    src = tmp_path / "dist"
    if layout is not None:
        src.mkdir()
        for path, content in layout.items():
            write(src, path, content)
    with pytest.raises(BuildDirectoryError, match=message):
        check_frontend_build(str(src))
