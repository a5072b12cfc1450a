"""Text and title extraction for single files: plain text, Markdown, HTML (BeautifulSoup), PDF (pypdf)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from lucerag.errors import ExtractionError


class Extracted(NamedTuple):
    title: str
    text: str
    metadata: dict[str, Any]


_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ExtractionError(f"invalid UTF-8 at byte {e.start}") from e


def extract_text(path: Path) -> Extracted:
    return Extracted(path.stem, _decode(path.read_bytes()), {})


def extract_markdown(path: Path) -> Extracted:
    """Raw Markdown text; the title is the first ATX heading (``# Title``)."""
    text = _decode(path.read_bytes())
    m = _MD_HEADING.search(text)
    return Extracted(m.group(1).strip() if m else path.stem, text, {})


_BLOCKS = ["address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
           "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
           "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"]
_SPACES = re.compile(r"\s+")


def extract_html(path: Path) -> Extracted:
    """Visible text of an HTML page, one line per block element; the title is ``<title>``,
    else the first ``<h1>``. Scripts and styles are dropped; the encoding follows ``<meta charset>``."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes(), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title_tag = soup.title or soup.find("h1")
    title = _SPACES.sub(" ", title_tag.get_text()).strip() if title_tag else ""
    if soup.head:
        soup.head.decompose()
    for tag in soup(_BLOCKS):
        tag.insert_before("\x00")
        tag.insert_after("\x00")
    lines = (_SPACES.sub(" ", line).strip() for line in soup.get_text().split("\x00"))
    return Extracted(title or path.stem, "\n".join(line for line in lines if line), {})


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
