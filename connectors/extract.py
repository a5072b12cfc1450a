"""Text and title extraction for single files: plain text, Markdown (markdown-it-py), HTML (trafilatura,
else BeautifulSoup), PDF (pypdf)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from lucerag.errors import ExtractionError


class Extracted(NamedTuple):
    title: str
    text: str
    metadata: dict[str, Any]


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ExtractionError(f"invalid UTF-8 at byte {e.start}") from e


def extract_text(path: Path) -> Extracted:
    return Extracted(path.stem, _decode(path.read_bytes()), {})


def extract_markdown(path: Path) -> Extracted:
    """Raw Markdown text; the title is the first heading (``# Title`` or a ``Title`` line
    underlined with ``===``/``---``), found by a CommonMark parser (markdown-it-py), so a ``#``
    line inside a fenced or indented code block (a shell comment) is never a title.

    YAML front matter (the file opens with a ``---`` line, YAML, then a ``---`` or ``...`` line; the
    Jekyll/Hugo/Obsidian convention) becomes metadata and is left out of the text; its ``title``, if
    any, is the title. A block that is not a YAML mapping is left in the text as it is."""
    text = _decode(path.read_bytes())
    metadata, text = front_matter(text)
    title = metadata.pop("title", None)
    title = title.strip() if isinstance(title, str) and title.strip() else markdown_title(text) or path.stem
    return Extracted(title, text, metadata)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M)


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(metadata, text after it) of a Markdown document's YAML front matter; ({}, text) without one.

    Values are kept when JSON can hold them (dates and times become ISO 8601 strings); keys become
    strings. Parsed by PyYAML's safe loader (no object construction)."""
    import json

    import yaml

    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    return json.loads(json.dumps({str(k): v for k, v in data.items()}, default=_iso)), text[m.end():]


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def markdown_title(text: str) -> str:
    """The plain text of the first heading of a Markdown document ("" when it has none)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    for i, token in enumerate(tokens[:-1]):
        if token.type == "heading_open":
            inline = tokens[i + 1]
            # a line break inside a heading (a two-line setext title) is a space
            parts = [" " if c.type in ("softbreak", "hardbreak") else c.content
                     for c in inline.children or [] if c.type in ("text", "code_inline", "softbreak", "hardbreak")]
            title = _SPACES.sub(" ", "".join(parts) or inline.content).strip()
            if title:
                return title
    return ""


_BLOCKS = ["address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
           "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
           "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"]
_SPACES = re.compile(r"\s+")
# Page furniture the fallback extractor drops: tags, ARIA roles, and words in an element's id/class.
_FURNITURE_TAGS = ["nav", "aside", "form", "dialog", "button", "select", "menu"]
_FURNITURE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "dialog", "alertdialog", "search",
                    "menubar", "menu"}
_FURNITURE_WORDS = {"cookie", "cookies", "consent", "gdpr", "banner", "navbar", "nav", "menu", "footer", "sidebar",
                    "share", "social", "newsletter", "related", "widget", "breadcrumb", "breadcrumbs", "skip",
                    "advert", "ads", "popup", "modal", "subscribe", "signup"}
_WORDS = re.compile(r"[a-z]+")


def extract_html(path: Path) -> Extracted:
    """The main content of an HTML page, one line per paragraph; the title is ``<title>``, else
    the first ``<h1>``.

    Navigation, cookie banners, sidebars, share buttons and footers are left out.  With the
    ``html`` extra installed (trafilatura, a maintained main-content extractor) it finds the
    content; without it, or when it finds none (a very short page), a BeautifulSoup fallback
    drops page furniture by tag (``nav``, ``aside``, ``form`` ...; ``header``/``footer`` outside the
    ``main``/``article``), ARIA role and id/class words (cookie, consent, menu, footer ...), keeps
    ``<main>``/``<article>``/``role=main`` when the page has one, and puts each block on its own
    line.  Scripts and styles are dropped; the encoding follows ``<meta charset>``."""
    from bs4 import BeautifulSoup

    data = path.read_bytes()
    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title_tag = soup.title or soup.find("h1")
    title = _SPACES.sub(" ", title_tag.get_text()).strip() if title_tag else ""
    text = _main_content(data) or _visible_text(soup)
    return Extracted(title or path.stem, text, {})


def _main_content(data: bytes) -> str:
    """trafilatura's main text ("" when it is not installed or finds nothing)."""
    try:
        import trafilatura
    except ImportError:
        return ""
    text = trafilatura.extract(data, include_comments=False, include_tables=True, include_links=False,
                               include_images=False, favor_precision=True, deduplicate=False)
    if not text:
        return ""
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _furniture(tag) -> bool:
    if tag.attrs is None:
        return False
    if (tag.get("role") or "").lower() in _FURNITURE_ROLES:
        return True
    words = " ".join([tag.get("id") or "", *(tag.get("class") or [])]).lower()
    return bool(_FURNITURE_WORDS.intersection(_WORDS.findall(words)))


def _visible_text(soup) -> str:
    if soup.head:
        soup.head.decompose()
    for tag in soup(_FURNITURE_TAGS):
        tag.decompose()
    for tag in soup(["header", "footer"]):
        if not tag.find_parent(["main", "article"]):
            tag.decompose()
    for tag in soup.find_all(_furniture):
        if not tag.decomposed and tag.name not in ("html", "body", "main", "article"):
            tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.find("article") or soup
    for tag in root(_BLOCKS):
        tag.insert_before("\x00")
        tag.insert_after("\x00")
    lines = (_SPACES.sub(" ", line).strip() for line in root.get_text().split("\x00"))
    return "\n".join(line for line in lines if line)


def extract_pdf(path: Path) -> Extracted:
    """Text of every page (pages separated by a blank line); the title from the PDF metadata."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("encrypted PDF (a password is needed)")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = (meta.title if meta else None) or ""
    except ExtractionError:
        raise
    except Exception as e:  # pypdf raises many types on damaged files
        raise ExtractionError(f"unreadable PDF: {type(e).__name__}: {e}") from e
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise ExtractionError("PDF has no extractable text (scanned images?)")
    return Extracted(str(title).strip() or path.stem, text, {"pages": len(pages)})


EXTRACTORS = {
    ".txt": extract_text,
    ".md": extract_markdown,
    ".markdown": extract_markdown,
    ".html": extract_html,
    ".htm": extract_html,
    ".pdf": extract_pdf,
}
