"""Parsing uploads into structure: bytes in, a title and an ordered tuple of blocks out.

The block model is in :mod:`flywheel.knowledge.blocks`, one parser per format in
:mod:`flywheel.knowledge.formats`. Every way a file can be unusable raises
:class:`InvalidInputError` with a message that says how to fix it.
"""

from __future__ import annotations

from pathlib import PurePath

from flywheel.errors import InvalidInputError
from flywheel.knowledge.blocks import NUMBERED_HEADING, Block, ParsedDocument, text_blocks, with_sections
from flywheel.knowledge.formats.csv import CSV_ROWS_PER_BLOCK, parse_csv
from flywheel.knowledge.formats.docx import parse_docx
from flywheel.knowledge.formats.html import parse_html
from flywheel.knowledge.formats.markdown import parse_markdown
from flywheel.knowledge.formats.pdf import parse_pdf

__all__ = [
    "CSV_ROWS_PER_BLOCK",
    "MEDIA_TYPES",
    "SUPPORTED_SUFFIXES",
    "Block",
    "ParsedDocument",
    "check_name",
    "decode_text",
    "parse_document",
    "with_sections",
]

MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
}
SUPPORTED_SUFFIXES = frozenset(MEDIA_TYPES)
MAX_TITLE_CHARS = 300


def parse_document(name: str, data: bytes, *, max_bytes: int = 50 * 1024 * 1024) -> ParsedDocument:
    """Parse one upload (``name`` is a plain file name); InvalidInputError for anything unusable."""
    suffix = check_name(name)
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"{name} is {_size(len(data))}, over the {_size(max_bytes)} limit.",
            hint="Split the document into smaller files, or raise knowledge.max_file_mb.",
        )
    if not data or data.isspace():
        raise InvalidInputError(f"{name} is empty.", hint="Upload a file with content.")
    title: str | None = None
    pages: int | None = None
    if suffix == ".pdf":
        title, blocks, pages = parse_pdf(name, data)
    elif suffix == ".docx":
        title, blocks = parse_docx(name, data)
    else:
        text = decode_text(name, data)
        if not text.strip():
            raise InvalidInputError(f"{name} is empty (only whitespace).", hint="Upload a file with content.")
        if suffix in (".html", ".htm"):
            title, blocks = parse_html(text)
        elif suffix in (".md", ".markdown"):
            blocks = parse_markdown(text)
        elif suffix == ".csv":
            blocks = parse_csv(name, text)
        else:
            blocks = text_blocks(text)
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise InvalidInputError(f"{name} contains no text.", hint="Check its content; images are not read.")
    if not title and suffix in (".txt", ".pdf"):
        title = _letterhead(blocks)
    elif not title and suffix != ".csv":
        title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    stem = PurePath(name).stem.replace("_", " ").replace("-", " ").strip()
    title = " ".join((title or stem or name).split())[:MAX_TITLE_CHARS]
    return ParsedDocument(title, with_sections(blocks), MEDIA_TYPES[suffix], pages)


def check_name(name: str) -> str:
    """Validate a plain file name (no folders, no traversal) and return its supported suffix."""
    if not name.strip() or any(bad in name for bad in ("/", "\\", "\x00", "..")):
        raise InvalidInputError(
            f"Invalid file name {name!r}: it must be a plain file name without folders, '..' or NUL.",
            hint="Rename the file (e.g. manual.pdf) and upload it again.",
        )
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidInputError(
            f"{name}: unsupported file type {suffix or '(no extension)'}.",
            hint=f"Use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}.",
        )
    return suffix


def decode_text(name: str, data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is refused, never guessed."""
    try:
        text = data.decode("utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise InvalidInputError(
            f"{name} is not readable text (neither UTF-8 nor UTF-16 with a BOM).",
            hint="Save it as UTF-8 text and upload it again.",
        )
    return text


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def _letterhead(blocks: list[Block]) -> str | None:
    """A plain-text title: the (up to 3) consecutive unnumbered top-level headings the file opens with."""
    leading: list[str] = []
    for block in blocks:
        if block.kind != "heading" or block.level > 1 or len(leading) == 3:
            break
        if NUMBERED_HEADING.match(block.text):
            break
        leading.append(block.text)
    return " — ".join(leading) or None
