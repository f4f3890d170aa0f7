# Copyright: Flora platform team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Check a static frontend build before it is published: what its index.html makes a browser fetch.

References are resolved the way a browser resolves them against the page (and a ``<base href>``), so
``/assets/x.js``, ``./assets/x.js`` and ``assets/x.js`` name the same file. External URLs (another origin,
``data:``, ``blob:``) are not part of the build and are left alone.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit

from ansible_collections.flora.deploy.plugins.module_utils.s3_publish import (
    INDEX_DOCUMENT,
    CacheRule,
    LocalFile,
    PublishError,
    check_build_directory,
    compile_cache_rules,
    describe_local_files,
)

# Only used to resolve references: whatever resolves to another origin is external.
PAGE_ORIGIN_HOST = "build.invalid"
PAGE_ORIGIN = "https://" + PAGE_ORIGIN_HOST

# <link rel> values for which a browser fetches the href while it loads the page.
FETCHED_LINK_RELS = frozenset(
    {
        "stylesheet",
        "icon",
        "apple-touch-icon",
        "apple-touch-icon-precomposed",
        "mask-icon",
        "modulepreload",
        "preload",
        "prefetch",
        "manifest",
    }
)

# Element -> attributes holding one URL. <a href> and <iframe src> are left out: they name routes, not files.
URL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "script": ("src",),
    "img": ("src",),
    "source": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
    "embed": ("src",),
}
SRCSET_ELEMENTS = frozenset({"img", "source"})


class BuildCheckError(PublishError):
    """A build that must not be published; ``missing`` lists the referenced paths it lacks."""

    def __init__(self, message: str, missing: t.Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


@dataclass(frozen=True)
class Reference:
    element: str
    attribute: str
    url: str

    @property
    def where(self) -> str:
        return f"<{self.element} {self.attribute}>"


@dataclass(frozen=True)
class ReferencedFile:
    path: str
    url: str
    cache_control: str
    content_type: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "path": self.path,
            "url": self.url,
            "cache_control": self.cache_control,
            "content_type": self.content_type,
            "sha256": self.sha256,
            "size": self.size,
        }


@dataclass(frozen=True)
class BuildReport:
    src: str
    files: int
    index: dict[str, str]
    referenced: list[ReferencedFile]

    def to_result(self) -> dict[str, t.Any]:
        return {
            "src": self.src,
            "files": self.files,
            "index": self.index,
            "referenced": [item.to_dict() for item in self.referenced],
        }


def parse_srcset(value: str) -> list[str]:
    """The URLs of a srcset ("a.png 1x, b.png 2x"); a URL may hold commas (data: URIs), never spaces."""
    urls = []
    position, length = 0, len(value)
    while position < length:
        while position < length and (value[position].isspace() or value[position] == ","):
            position += 1
        start = position
        while position < length and not value[position].isspace():
            position += 1
        url = value[start:position]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            while position < length and value[position] != ",":
                position += 1
        if url:
            urls.append(url)
    return urls


class _ReferenceCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.references: list[Reference] = []
        self.base_href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if tag == "base":
            if self.base_href is None and values.get("href"):
                self.base_href = values["href"].strip()
            return
        if tag == "link":
            rels = set(values.get("rel", "").lower().split())
            if rels & FETCHED_LINK_RELS and values.get("href", "").strip():
                self.references.append(Reference("link", "href", values["href"].strip()))
            return
        for attribute in URL_ATTRIBUTES.get(tag, ()):
            if values.get(attribute, "").strip():
                self.references.append(Reference(tag, attribute, values[attribute].strip()))
        if tag in SRCSET_ELEMENTS and values.get("srcset"):
            self.references.extend(Reference(tag, "srcset", url) for url in parse_srcset(values["srcset"]))

    handle_startendtag = handle_starttag


def find_references(html: str) -> tuple[list[Reference], str | None]:
    """Every URL the page makes a browser fetch as it loads, in document order, and its <base href>."""
    collector = _ReferenceCollector()
    collector.feed(html)
    collector.close()
    return collector.references, collector.base_href


def normalise_base(base: str | None) -> str:
    """The URL path the build is served under: '' -> '/', 'app' -> '/app/'."""
    stripped = (base or "").strip().strip("/")
    return "/" + stripped + "/" if stripped else "/"


def resolve_reference(url: str, base: str, base_href: str | None = None) -> str | None:
    """The path, relative to the build root, that ``url`` names on the page; None when it is external.

    Raises BuildCheckError for a same-origin URL outside ``base``, which this build cannot serve.
    """
    page = urljoin(PAGE_ORIGIN + base, INDEX_DOCUMENT)
    if base_href:
        page = urljoin(page, base_href)
    parts = urlsplit(urljoin(page, url))
    if parts.scheme not in ("http", "https") or parts.netloc != PAGE_ORIGIN_HOST:
        return None
    path = unquote(parts.path)
    if not path.startswith(base):
        raise BuildCheckError(f"{INDEX_DOCUMENT} references {url}, which is outside the base path {base}")
    return path[len(base) :]


def resolve_references(html: str, available: t.Container[str], base: str, where: str) -> list[tuple[str, str]]:
    """(path, url) of each file of the build the page references, once each, sorted by path.

    Raises BuildCheckError naming every referenced path that ``available`` lacks; ``where`` names the build.
    """
    base = normalise_base(base)
    references, base_href = find_references(html)
    found: dict[str, str] = {}
    missing: dict[str, Reference] = {}
    for reference in references:
        path = resolve_reference(reference.url, base, base_href)
        if path is None or path == INDEX_DOCUMENT or path in found or path in missing:
            continue
        if path in available:
            found[path] = reference.url
        else:
            missing[path] = reference
    if missing:
        listed = ", ".join(f"{path} ({reference.where})" for path, reference in missing.items())
        raise BuildCheckError(
            f"{INDEX_DOCUMENT} in {where} references {len(missing)} file(s) the build does not have: {listed}; "
            "refusing to publish an incomplete build",
            list(missing),
        )
    return sorted(found.items())


def report_of(src: str, count: int, files: t.Mapping[str, LocalFile], base: str) -> BuildReport:
    """The report of a build of ``count`` files, of which ``files`` (by path) hold index.html and whatever it
    references, described as s3_publish publishes them."""
    index = files[INDEX_DOCUMENT]
    with open(index.source, "rb") as stream:
        html = stream.read().decode("utf-8", errors="replace")
    referenced = [
        ReferencedFile(
            path=path,
            url=url,
            cache_control=files[path].cache_control,
            content_type=files[path].content_type,
            sha256=files[path].sha256,
            size=files[path].size,
        )
        for path, url in resolve_references(html, files, base, src)
    ]
    summary = {
        "path": INDEX_DOCUMENT,
        "sha256": index.sha256,
        "size": index.size,
        "cache_control": index.cache_control,
        "content_type": index.content_type,
    }
    return BuildReport(src=src, files=count, index=summary, referenced=referenced)


def check_frontend_build(
    src: str,
    base: str = "/",
    cache_rules: t.Sequence[CacheRule] | None = None,
    content_types: t.Mapping[str, str] | None = None,
) -> BuildReport:
    """The files index.html references, each known to be in the build, with the headers s3_publish gives them.

    Only index.html and the files it references are read and hashed."""
    rules = list(cache_rules) if cache_rules is not None else compile_cache_rules(None)
    listing = check_build_directory(src)
    paths = dict(listing)
    with open(paths[INDEX_DOCUMENT], "rb") as stream:
        html = stream.read().decode("utf-8", errors="replace")
    wanted = [INDEX_DOCUMENT] + [path for path, dummy in resolve_references(html, paths, base, src)]
    described = describe_local_files([(path, paths[path]) for path in wanted], rules, content_types)
    return report_of(src, len(listing), {item.path: item for item in described}, base)
