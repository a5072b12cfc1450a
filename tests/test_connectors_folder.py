"""Folder connector: .txt/.md/.html/.pdf files with real extraction (pypdf, BeautifulSoup)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from lucerag.connectors import ConnectorError, Rejected, guess_format, read_documents


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A minimal valid one-page PDF (Helvetica text, correct xref table)."""
    shown = b" ".join(b"(%s) '" % line.encode("latin-1") for line in lines)
    content = b"BT /F1 12 Tf 14 TL 72 720 Td " + shown + b" ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    if title is not None:
        objs.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    info = b" /Info %d 0 R" % len(objs) if title is not None else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, info, xref)
    return out


HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Café guide</title>
<style>body { color: red }</style><script>var hidden = "SCRIPT TEXT";</script></head>
<body><h1>Welcome</h1><p>Espresso &amp; <b>crème</b> brûlée.</p>

<p>Second paragraph.</p></body></html>"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.txt").write_text("Plain text file.\nSecond line.")
    (root / "sub" / "guide.md").write_text("Intro line\n\n## Install Guide ##\n\nRun `pip install`.\n# Later\n")
    (root / "sub" / "page.html").write_text(HTML)
    (root / "sub" / "deeper" / "report.pdf").write_bytes(make_pdf(["Quarterly results", "Revenue grew."], "Q3 Report"))
    (root / "sub" / "deeper" / "untitled.pdf").write_bytes(make_pdf(["No title here"]))
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden.txt").write_text("secret")
    (root / ".git" / "HEAD.txt").write_text("ref")
    os.utime(root / "a.txt", (1_700_000_000, 1_700_000_000))
    return root


def test_folder_reads_all_supported_files(folder: Path) -> None:
    assert guess_format(folder) == "folder"
    stream = read_documents(folder)
    docs = {d.id: d for d in stream}
    assert list(docs) == ["a.txt", "sub/deeper/report.pdf", "sub/deeper/untitled.pdf", "sub/guide.md", "sub/page.html"]
    assert stream.stats.read == 5 and stream.stats.rejected == 0

    txt = docs["a.txt"]
    assert (txt.title, txt.text) == ("a", "Plain text file.\nSecond line.")
    assert txt.metadata == {"path": "a.txt", "format": "txt", "modified": "2023-11-14T22:13:20+00:00"}

    md = docs["sub/guide.md"]
    assert md.title == "Install Guide" and "Run `pip install`." in md.text

    html = docs["sub/page.html"]
    assert html.title == "Café guide"
    assert "Espresso & crème brûlée." in html.text and "Second paragraph." in html.text
    assert "SCRIPT TEXT" not in html.text and "color: red" not in html.text and "<p>" not in html.text

    pdf = docs["sub/deeper/report.pdf"]
    assert pdf.title == "Q3 Report" and pdf.metadata["pages"] == 1 and pdf.metadata["format"] == "pdf"
    assert "Quarterly results" in pdf.text and "Revenue grew." in pdf.text
    assert docs["sub/deeper/untitled.pdf"].title == "untitled"
    datetime.fromisoformat(pdf.metadata["modified"])


def test_single_file_and_extension_filter(folder: Path) -> None:
    [doc] = read_documents(folder / "sub" / "page.html")
    assert doc.id == "page.html" and doc.title == "Café guide"
    assert [d.id for d in read_documents(folder, extensions=["md", ".PDF"])] == [
        "sub/deeper/report.pdf", "sub/deeper/untitled.pdf", "sub/guide.md"]
    with pytest.raises(ConnectorError, match="no extractor"):
        list(read_documents(folder, extensions=[".docx"]))
    with pytest.raises(ConnectorError, match="not a "):
        list(read_documents(folder / "image.png", format="folder"))


def test_bad_files_are_rejected_with_path(folder: Path) -> None:
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf at all")
    (folder / "latin1.txt").write_bytes(b"caf\xe9")
    (folder / "empty.md").write_text("  \n")
    (folder / "blank.pdf").write_bytes(make_pdf([]))
    with pytest.raises(ConnectorError) as exc:
        list(read_documents(folder))
    assert str(exc.value).startswith(f"{folder}: path blank.pdf: PDF has no extractable text")
    rejects: list[Rejected] = []
    stream = read_documents(folder, on_error="skip", rejects=rejects)
    ids = [d.id for d in stream]
    assert len(ids) == 5 and stream.stats.read == 9 and stream.stats.rejected == 4
    why = {r.location: r.reason for r in rejects}
    assert why["path broken.pdf"].startswith("unreadable PDF")
    assert why["path latin1.txt"] == "invalid UTF-8 at byte 3"
    assert why["path empty.md"] == "empty text (id 'empty.md')"
    assert "no extractable text" in why["path blank.pdf"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="no such file"):
        read_documents(tmp_path / "nope", format="folder")


def test_markdown_title_comes_from_a_heading_outside_code(tmp_path: Path) -> None:
    """Issue 15 item 11: a '#' line in a fenced (or indented) code block is a shell comment, not a title."""
    root = tmp_path / "md"
    root.mkdir()
    (root / "fenced.md").write_text("Some intro.\n\n```bash\n# install the package\npip install lucerag\n```\n\n"
                                    "## Rotating keys\n\nText.\n")
    (root / "tilde.md").write_text("~~~~\n# not a title\n~~~~\n\nKeys *and* `locks`\n=================\n\nText.\n")
    (root / "indented.md").write_text("Intro.\n\n    # a comment in indented code\n\nNo heading at all.\n")
    (root / "unclosed.md").write_text("```\n# inside an unclosed fence\n")
    docs = {d.id: d.title for d in read_documents(root)}
    assert docs == {"fenced.md": "Rotating keys", "tilde.md": "Keys and locks", "indented.md": "indented",
                    "unclosed.md": "unclosed"}


def test_markdown_front_matter_becomes_metadata_and_a_two_line_title_keeps_its_space(tmp_path: Path) -> None:
    """A fresh user's front matter became the title 'lang: enteam: infra' and stayed in the text."""
    root = tmp_path / "md"
    root.mkdir()
    (root / "keys.md").write_text("---\nlang: en\nteam: infra\nreviewed: 2024-05-01\ntags: [ops, keys]\n"
                                  "path: not/mine.md\n---\n# Keys\n\nRotate the keys monthly.\n")
    (root / "titled.md").write_text("---\ntitle: From the front matter\n...\nBody text.\n")
    (root / "setext.md").write_text("Backup\npolicy\n======\n\nNightly.\n")
    (root / "rule.md").write_text("---\n\nJust a thematic break above.\n\n---\n\nMore.\n")
    (root / "bad.md").write_text("---\nlang: [unclosed\n---\nText.\n")
    docs = {d.id: d for d in read_documents(root)}
    keys = docs["keys.md"]
    assert keys.title == "Keys" and keys.text.startswith("# Keys") and "lang:" not in keys.text
    assert {k: keys.metadata[k] for k in ("lang", "team", "reviewed", "tags")} == {
        "lang": "en", "team": "infra", "reviewed": "2024-05-01", "tags": ["ops", "keys"]}
    assert keys.metadata["path"] == "keys.md"  # the connector's provenance wins over the file's own key
    assert docs["titled.md"].title == "From the front matter" and docs["titled.md"].text == "Body text.\n"
    assert docs["setext.md"].title == "Backup policy"
    for name in ("rule.md", "bad.md"):  # not a YAML mapping: left in the text, no metadata taken
        assert docs[name].text.startswith("---") and "lang" not in docs[name].metadata

HTML_PAGES = Path(__file__).parent / "data" / "html"
# Per page: sentences of the main content (each must come out whole, inline links with their spaces)
# and page furniture (navigation, cookie banners, sidebars, share buttons, footers) that must not.
HTML_EXPECTED = {
    "docs-page.html": (
        ["Open the key console and choose Create key.", "then watch the usage page until requests signed",
         "so check the job settings as well.", "Rotating API keys", "fail with status 401."],
        ["cookie", "Accept all", "HomeDocs", "Pricing", "Sign up", "Getting started", "Billing and invoices",
         "All rights reserved", "newsletter", "Terms of service"]),
    "blog-post.html": (
        ["we moved every loaf to a sourdough starter, and the change", "but the study we read is worth a look.",
         "a levain must be fed at the same hours every day"],
        ["cookies", "Manage preferences", "About us", "Share on", "Email this", "Related posts",
         "Ten tips for rye", "Copyright", "Imprint"]),
    "news-article.html": (
        ["According to the city council, the project cost 48 million euros and was paid for partly by a "
         "regional climate fund.", "protects about two thousand homes."],
        ["Skip to content", "Weather", "Subscribe", "214 partners", "I agree", "morning briefing", "Sign up",
         "Advertise"]),
}


@pytest.mark.parametrize("extractor", ["main", "fallback"])
@pytest.mark.parametrize("page", sorted(HTML_EXPECTED))
def test_html_main_content_without_navigation_banners_or_footers(page: str, extractor: str) -> None:
    """Issue 15 item 12, on pages written like real ones: trafilatura (the html extra) and the
    BeautifulSoup fallback both keep the article and drop the page furniture."""
    from bs4 import BeautifulSoup

    from lucerag.connectors.extract import _visible_text, extract_html

    path = HTML_PAGES / page
    if extractor == "main":
        pytest.importorskip("trafilatura", reason="extra lucerag[html] not installed")
        doc = extract_html(path)
        text = doc.text
        assert doc.title == BeautifulSoup(path.read_bytes(), "html.parser").title.get_text()
    else:
        soup = BeautifulSoup(path.read_bytes(), "html.parser")
        for tag in soup(["script", "style", "noscript", "template"]):
            tag.decompose()
        text = _visible_text(soup)
    content, furniture = HTML_EXPECTED[page]
    flat = " ".join(text.split())
    assert [s for s in content if s not in flat] == []
    assert [s for s in furniture if s.lower() in flat.lower()] == []
