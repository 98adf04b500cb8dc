"""Parsing uploads into structure: bytes in, a title and an ordered list of blocks out.

Blocks keep what chunking and citations need: headings (with level), paragraphs, lists, tables and
code, each with the page it is on (PDF) and the heading path in force (``section``). Every way a
file can be unusable raises :class:`InvalidInputError` with a message that says how to fix it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Literal

from flywheel.errors import InvalidInputError

BlockKind = Literal["heading", "paragraph", "table", "list", "code"]
MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
}
SUPPORTED_SUFFIXES = frozenset(MEDIA_TYPES)
CSV_ROWS_PER_BLOCK = 20
_NUMBERED_HEADING = re.compile(r"^(\d+(\.\d+){0,4})\.?\s+[A-Z][^.!?]{1,80}$")


@dataclass(frozen=True)
class Block:
    text: str
    kind: BlockKind
    page: int | None = None
    section: str | None = None
    level: int = 0


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    blocks: tuple[Block, ...]
    media_type: str
    page_count: int | None


def check_name(name: str) -> str:
    """A plain file name: no directories, no traversal, a supported suffix."""
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", "..") or ".." in name:
        raise InvalidInputError(
            f"Invalid file name {name!r}: it must be a plain file name without folders or '..'.",
            hint="Rename the file (e.g. manual.pdf) and upload it again.",
        )
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidInputError(
            f"{name}: unsupported file type {suffix or '(none)'}.",
            hint=f"Supported types: {', '.join(sorted(SUPPORTED_SUFFIXES))}.",
        )
    return suffix


def decode_text(name: str, data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is refused, never guessed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
    raise InvalidInputError(
        f"{name} is not readable text (not UTF-8 or UTF-16).",
        hint="Save the file as UTF-8 text and upload it again.",
    )


def with_sections(blocks: Iterable[Block]) -> tuple[Block, ...]:
    """Set every block's ``section`` to the heading path in force (headings included)."""
    path: list[tuple[int, str]] = []
    out = []
    for block in blocks:
        if block.kind == "heading":
            level = max(block.level, 1)
            path = [(lvl, text) for lvl, text in path if lvl < level] + [(level, block.text)]
        section = " > ".join(text for _, text in path) or None
        out.append(replace(block, section=section))
    return tuple(out)


def _heading_level(line: str) -> int:
    """Heading level of a plain-text line (numbered like 3.2 or a short ALL-CAPS line), 0 if none."""
    line = line.strip()
    match = _NUMBERED_HEADING.match(line)
    if match and len(line) <= 90:
        return match.group(1).count(".") + 1
    letters = [c for c in line if c.isalpha()]
    if len(letters) >= 3 and len(line) <= 80 and line.upper() == line and not line.endswith((".", ",", ";")):
        return 1
    return 0


def _is_folio(text: str) -> bool:
    return bool(re.fullmatch(r"\d{1,4}|[\divxlc]+-\d{1,4}|page \d+( of \d+)?", text.strip(), re.I))


def paragraphs(text: str, page: int | None = None) -> list[Block]:
    """Plain text → headings, lists and paragraphs.

    Blank lines end paragraphs. Inside a run of lines, a numbered (``3.2 Oil``) or short ALL-CAPS
    line is a heading, and a short line ending a sentence ends its paragraph (PDF text has no
    blank lines between paragraphs).
    """
    blocks: list[Block] = []
    text = re.sub(r"(?:\.\s*){4,}", " … ", text.replace("\r\n", "\n"))  # table-of-contents dot leaders
    for raw in re.split(r"\n\s*\n", text):
        lines = [line.rstrip() for line in raw.strip().split("\n") if line.strip()]
        if len(lines) == 2 and re.fullmatch(r"[=\-]{3,}", lines[1].strip()):
            blocks.append(Block(lines[0].strip(), "heading", page, level=1 if lines[1].strip()[0] == "=" else 2))
            continue
        single_heading = len(lines) == 1 and _heading_level(lines[0]) > 0
        if lines and not single_heading and all(re.match(r"\s*([-*•]|\d+[.)])\s", line) for line in lines):
            blocks.append(Block("\n".join(line.strip() for line in lines), "list", page))
            continue
        width = max((len(line) for line in lines), default=0)
        current: list[str] = []
        for line in lines:
            level = _heading_level(line) if not current or len(lines) > 2 else 0
            if level and not _is_folio(line):
                _flush_paragraph(current, blocks, page)
                blocks.append(Block(line.strip(), "heading", page, level=level))
                continue
            current.append(line)
            if width > 60 and len(line) < 0.6 * width and line.rstrip().endswith((".", "!", "?", ":")):
                _flush_paragraph(current, blocks, page)
        _flush_paragraph(current, blocks, page)
    return blocks


def _flush_paragraph(lines: list[str], blocks: list[Block], page: int | None) -> None:
    if lines and not _is_folio(" ".join(lines)):
        blocks.append(Block(" ".join(x.strip() for x in lines), "paragraph", page))
    lines.clear()


def table_text(rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(cell.strip().replace("\n", " ") for cell in row) + " |" for row in rows)


def parse_markdown(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i, buffer = 0, []

    def flush() -> None:
        if buffer:
            blocks.extend(paragraphs("\n".join(buffer)))
            buffer.clear()

    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            flush()
            blocks.append(Block(heading.group(2).strip(), "heading", level=len(heading.group(1))))
        elif line.strip().startswith("```"):
            flush()
            code = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            if any(c.strip() for c in code):
                blocks.append(Block("\n".join(code), "code"))
        elif line.strip().startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    rows.append(cells)
                i += 1
            blocks.append(Block(table_text(rows), "table"))
            continue
        else:
            buffer.append(line)
        i += 1
    flush()
    return blocks


def parse_html(text: str) -> tuple[str | None, list[Block]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    blocks: list[Block] = []
    body = soup.body or soup
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "pre", "table"]):
        if element.find_parent(["table", "ul", "ol", "pre"]) is not None and element.name != "table":
            continue
        if element.name == "table" and element.find_parent("table") is not None:
            continue
        if element.name.startswith("h"):
            blocks.append(Block(element.get_text(" ", strip=True), "heading", level=int(element.name[1])))
        elif element.name in ("ul", "ol"):
            items = [li.get_text(" ", strip=True) for li in element.find_all("li")]
            blocks.append(Block("\n".join(f"- {item}" for item in items if item), "list"))
        elif element.name == "pre":
            blocks.append(Block(element.get_text(), "code"))
        elif element.name == "table":
            rows = [[cell.get_text(" ", strip=True) for cell in tr.find_all(["th", "td"])]
                    for tr in element.find_all("tr")]
            blocks.append(Block(table_text([r for r in rows if r]), "table"))
        else:
            blocks.append(Block(element.get_text(" ", strip=True), "paragraph"))
    return title, [b for b in blocks if b.text.strip()]


def parse_docx(name: str, data: bytes) -> tuple[str | None, list[Block]]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several unrelated types for a broken package
        raise InvalidInputError(f"{name} is not a readable Word document ({type(exc).__name__}).",
                                hint="Open and re-save it in Word or LibreOffice as .docx.") from exc
    blocks: list[Block] = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            level = re.match(r"Heading (\d)", style)
            if level or style == "Title":
                blocks.append(Block(text, "heading", level=int(level.group(1)) if level else 1))
            elif "List" in style:
                blocks.append(Block(f"- {text}", "list"))
            else:
                blocks.append(Block(text, "paragraph"))
        elif tag == "tbl":
            table = Table(child, document)
            rows = [[cell.text for cell in row.cells] for row in table.rows]
            blocks.append(Block(table_text(rows), "table"))
    title = document.core_properties.title or next((b.text for b in blocks if b.kind == "heading"), None)
    return title, merge_lists(blocks)


def merge_lists(blocks: list[Block]) -> list[Block]:
    """Consecutive list items become one list block."""
    merged: list[Block] = []
    for block in blocks:
        if block.kind == "list" and merged and merged[-1].kind == "list" and merged[-1].page == block.page:
            merged[-1] = replace(merged[-1], text=merged[-1].text + "\n" + block.text)
        else:
            merged.append(block)
    return merged


def parse_pdf(name: str, data: bytes) -> tuple[str | None, list[Block], int]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidInputError(f"{name} is an encrypted (password-protected) PDF.",
                                    hint="Remove the password (print to PDF or `qpdf --decrypt`) and upload again.")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or None
    except InvalidInputError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise InvalidInputError(f"{name} is not a readable PDF: {exc}",
                                hint="Check that the file is complete; re-export it as PDF.") from exc
    if not any(text.strip() for text in pages):
        raise InvalidInputError(f"{name} has no extractable text (a scanned PDF?).",
                                hint="OCR is not supported: upload a PDF with a text layer.")
    blocks = [block for number, text in enumerate(pages, 1) for block in paragraphs(text, number)]
    return meta_title, blocks, len(pages)


def parse_csv(name: str, text: str) -> list[Block]:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInputError(f"{name} has no rows.", hint="Upload a CSV with a header row and data.")
    header, body = rows[0], rows[1:] or [[]]
    return [Block(table_text([header, *body[i : i + CSV_ROWS_PER_BLOCK]]), "table")
            for i in range(0, len(body), CSV_ROWS_PER_BLOCK)]


def parse_document(name: str, data: bytes, *, max_bytes: int = 50 * 1024 * 1024) -> ParsedDocument:
    """Parse one uploaded file. Raises InvalidInputError for anything unusable."""
    suffix = check_name(name)
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"{name} is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit.",
            hint="Split the document, or raise knowledge.max_file_mb.",
        )
    if not data.strip():
        raise InvalidInputError(f"{name} is empty.", hint="Upload a file with content.")
    title: str | None = None
    pages: int | None = None
    if suffix == ".pdf":
        title, blocks, pages = parse_pdf(name, data)
    elif suffix == ".docx":
        title, blocks = parse_docx(name, data)
    else:
        text = decode_text(name, data)
        if suffix in (".html", ".htm"):
            title, blocks = parse_html(text)
        elif suffix in (".md", ".markdown"):
            blocks = parse_markdown(text)
        elif suffix == ".csv":
            blocks = parse_csv(name, text)
        else:
            blocks = paragraphs(text)
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise InvalidInputError(f"{name} contains no text.", hint="Check the file's content.")
    stem = PurePath(name).stem.replace("_", " ").replace("-", " ")
    leading = []  # a plain-text letterhead: the consecutive top-level headings the file opens with
    for block in blocks:
        if block.kind != "heading" or block.level > 1 or len(leading) == 3 or _NUMBERED_HEADING.match(block.text):
            break
        leading.append(block.text)
    title = title or " — ".join(leading) or stem
    return ParsedDocument(title[:500], with_sections(blocks), MEDIA_TYPES[suffix], pages)
