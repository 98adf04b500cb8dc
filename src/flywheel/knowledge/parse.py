"""Parsing uploads into structure: bytes in, a title and an ordered tuple of blocks out.

Blocks keep what chunking and citations need: headings (with level), paragraphs, lists, tables and
code, each with the page it is on (PDF) and the heading path in force (``section``). Every way a
file can be unusable raises :class:`InvalidInputError` with a message that says how to fix it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any, Literal

from flywheel.errors import InvalidInputError

BlockKind = Literal["heading", "paragraph", "table", "list", "code"]
MEDIA_TYPES = {
    ".pdf": "application/pdf", ".html": "text/html", ".htm": "text/html", ".md": "text/markdown",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".markdown": "text/markdown", ".txt": "text/plain", ".csv": "text/csv",
}
SUPPORTED_SUFFIXES = frozenset(MEDIA_TYPES)
CSV_ROWS_PER_BLOCK = 20
MAX_TITLE_CHARS = 300

_NUMBERED_HEADING = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){0,4})\.?\s+[A-Z][^.!?]{1,80}$")
_CHAPTER_HEADING = re.compile(r"^(?:chapter|part|appendix)\s+(?:\d{1,3}|[IVXLC]{1,6}|[A-Z])\b[^.!?]{0,70}$",
                              re.I)
_BULLET = re.compile(r"^\s*[-*+•▪◦‣]\s+\S")
_NUMBERED_ITEM = re.compile(r"^\s*(\d{1,3}|[a-z])[.)]\s+\S")
_LEADER = re.compile(r"^(.*?\S)\s*(?:\.\s*){4,}(\S.{0,40})$")  # a TOC/index entry: "Title ....... 1-3"
_DOT_RUN = re.compile(r"(?:\.\s*){4,}")
_RULE = re.compile(r"[-=_*~#]{3,}")
_FOLIO = re.compile(r"(?:[Pp]age\s+)?(?:\d{1,4}|[ivxlc]{1,7}|[A-Z]{1,3}-\d{1,4}|\d{1,3}-\d{1,4})"
                    r"(?:\s+of\s+\d{1,4})?")  # a page number line: "12", "iv", "G-3", "10-2", "Page 3 of 9"
_ADMONITIONS = {"NOTE", "NOTES", "CAUTION", "WARNING", "DANGER", "IMPORTANT", "TIP"}
_NO_HEADING_END = (".", ",", ";", ":")
_BOLD_FONT = re.compile(r"bold|black|heavy|demi", re.I)


@dataclass(frozen=True)
class Block:
    """One structural unit of a document, in reading order."""

    text: str
    kind: BlockKind
    page: int | None = None  # 1-based (PDF); None for formats without pages
    section: str | None = None  # heading path in force, e.g. "3 Engine > 3.2 Oil servicing"
    level: int = 0  # heading level (1 = top); 0 for other kinds


@dataclass(frozen=True)
class ParsedDocument:
    """A parsed upload: its title, blocks, media type and page count (PDF only)."""

    title: str
    blocks: tuple[Block, ...]
    media_type: str
    page_count: int | None


def parse_document(name: str, data: bytes, *, max_bytes: int = 50 * 1024 * 1024) -> ParsedDocument:
    """Parse one upload (``name`` is a plain file name); InvalidInputError for anything unusable."""
    suffix = check_name(name)
    if len(data) > max_bytes:
        raise InvalidInputError(f"{name} is {_size(len(data))}, over the {_size(max_bytes)} limit.",
                                hint="Split the document into smaller files, or raise knowledge.max_file_mb.")
    if not data or data.isspace():
        raise InvalidInputError(f"{name} is empty.", hint="Upload a file with content.")
    title: str | None = None
    pages: int | None = None
    if suffix == ".pdf":
        from flywheel.knowledge.pdf import parse_pdf

        title, blocks, pages = parse_pdf(name, data)
    elif suffix == ".docx":
        title, blocks = _parse_docx(name, data)
    else:
        text = decode_text(name, data)
        if not text.strip():
            raise InvalidInputError(f"{name} is empty (only whitespace).", hint="Upload a file with content.")
        if suffix in (".html", ".htm"):
            title, blocks = _parse_html(text)
        elif suffix in (".md", ".markdown"):
            blocks = _parse_markdown(text)
        elif suffix == ".csv":
            blocks = _parse_csv(name, text)
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
        raise InvalidInputError(f"Invalid file name {name!r}: it must be a plain file name without folders, "
                                "'..' or NUL.", hint="Rename the file (e.g. manual.pdf) and upload it again.")
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidInputError(f"{name}: unsupported file type {suffix or '(no extension)'}.",
                                hint=f"Use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}.")
    return suffix


def decode_text(name: str, data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is refused, never guessed."""
    try:
        text = data.decode("utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise InvalidInputError(f"{name} is not readable text (neither UTF-8 nor UTF-16 with a BOM).",
                                hint="Save it as UTF-8 text and upload it again.")
    return text


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def with_sections(blocks: Iterable[Block]) -> tuple[Block, ...]:
    """Set every block's ``section`` to the heading path in force (a heading is in its own path)."""
    path: list[tuple[int, str]] = []
    out = []
    for block in blocks:
        if block.kind == "heading":
            level = max(block.level, 1)
            path = [(lvl, text) for lvl, text in path if lvl < level] + [(level, block.text)]
        out.append(replace(block, section=" > ".join(text for _, text in path) or None))
    return tuple(out)


def table_text(rows: Sequence[Sequence[str]]) -> str:
    """Rows as Markdown-ish lines ``| a | b |`` (cell whitespace flattened, pipes escaped)."""
    clean = [[" ".join(cell.split()).replace("|", "\\|") for cell in row] for row in rows if row]
    return "\n".join("| " + " | ".join(row) + " |" for row in clean)


def merge_blocks(blocks: list[Block], kind: str, joiner: str, *, level: bool = False) -> list[Block]:
    """Join consecutive blocks of ``kind`` on the same page (and of the same level if ``level``)."""
    out: list[Block] = []
    for b in blocks:
        last = out[-1] if out else None
        same_level = not level or (last is not None and b.level == last.level)
        if last and b.kind == last.kind == kind and b.page == last.page and same_level:
            out[-1] = replace(last, text=last.text + joiner + b.text)
        else:
            out.append(b)
    return out


def _letterhead(blocks: list[Block]) -> str | None:
    """A plain-text title: the (up to 3) consecutive unnumbered top-level headings the file opens with."""
    leading: list[str] = []
    for block in blocks:
        if block.kind != "heading" or block.level > 1 or len(leading) == 3:
            break
        if _NUMBERED_HEADING.match(block.text):
            break
        leading.append(block.text)
    return " — ".join(leading) or None


def _guess_level(line: str) -> int:
    """Level of an unstyled heading line: numbered (``3.2 Oil``), ``Chapter 3 …``, short ALL CAPS; else 0."""
    match = _NUMBERED_HEADING.match(line)
    if match and len(line) <= 90:
        return match.group(1).count(".") + 1
    if _CHAPTER_HEADING.match(line):
        return 1
    caps = sum(c.isalpha() for c in line) >= 3 and len(line) <= 80 and len(line.split()) <= 10
    return int(caps and line.upper() == line and not line.endswith(_NO_HEADING_END)
               and line.strip("!: ") not in _ADMONITIONS)


def _starts_list(texts: Sequence[str], i: int) -> bool:
    """A numbered line starts a list when the next line is numbered too, or when item n+1 follows within
    a few (wrapped) lines and the line reads as a sentence rather than a heading."""
    match = _NUMBERED_ITEM.match(texts[i])
    if not match or i + 1 >= len(texts):
        return False
    if _NUMBERED_ITEM.match(texts[i + 1]):
        return True
    label = match.group(1)
    following = str(int(label) + 1) if label.isdigit() else chr(ord(label) + 1)
    sentence = texts[i].endswith((".", "!", "?", ":")) or len(texts[i]) > 80 or not _guess_level(texts[i])
    return sentence and any(re.match(rf"\s*{re.escape(following)}[.)]\s", t) for t in texts[i + 2 : i + 6])


def text_blocks(text: str, page: int | None = None, *, guess_headings: bool = True) -> list[Block]:
    """Plain text → headings, lists and paragraphs (see :func:`_line_blocks`)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # Dot leaders inside running text (a table of contents flattened onto one line) carry no meaning
    # and cost one token per dot; a line that is a single leader entry is kept for line_blocks.
    lines = [line if len(line) <= 200 and _LEADER.match(line) else _DOT_RUN.sub(" … ", line) for line in lines]
    return line_blocks([(line, 0) for line in lines], page, guess=guess_headings)


def line_blocks(lines: Sequence[tuple[str, int]], page: int | None, *, guess: bool) -> list[Block]:
    """Lines with a known heading level (0 = unknown) → blocks. Blank lines end paragraphs, as does a short
    line ending a sentence (PDF text has none); ===/--- underline headings; bullets, runs of numbered items
    and TOC entries (``Title ..... 3-2``) are lists; with ``guess``, heading lines are guessed too."""
    blocks: list[Block] = []
    groups: list[list[tuple[str, int]]] = [[]]
    for line, level in lines:
        if line.strip():
            groups[-1].append((line.rstrip(), level))
        elif groups[-1]:
            groups.append([])
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block(" ".join(para), "paragraph", page))
        if items:
            blocks.append(Block("\n".join(items), "list", page))
        para.clear()
        items.clear()

    for group in groups:
        texts = [line.strip() for line, _ in group]
        underlined = len(texts) == 2 and _RULE.fullmatch(texts[1]) and texts[1][0] in "=-"
        if underlined and not _BULLET.match(texts[0]):
            blocks.append(Block(texts[0], "heading", page, level=1 if texts[1][0] == "=" else 2))
            continue
        width = max((len(t) for t in texts), default=0)
        for i, ((raw, known), line) in enumerate(zip(group, texts, strict=True)):
            if _RULE.fullmatch(line):
                continue
            leader = _LEADER.match(line)
            numbered = _NUMBERED_ITEM.match(line) and (items or _starts_list(texts, i))
            if not known and (leader or numbered or _BULLET.match(line)):
                if para:
                    flush()
                items.append(f"{leader.group(1)} … {leader.group(2)}" if leader else line)
            elif items and not known and (raw[:1].isspace() or line[:1].islower() or (  # the item goes on:
                    len(texts[i - 1]) >= 0.8 * width and not texts[i - 1].endswith((".", "!", "?", ":")))):
                items[-1] += " " + line  # indented, lowercase, or after a full-width unfinished line
            elif level := known or (_guess_level(line) if guess and (not para or len(texts) > 2) else 0):
                flush()
                blocks.append(Block(line, "heading", page, level=level))
            else:
                if items:
                    flush()
                para.append(line)
                if width > 60 and len(line) < 0.6 * width and line.endswith((".", "!", "?", ":")):
                    flush()
        flush()
    return blocks


def _parse_markdown(text: str) -> list[Block]:
    """ATX headings, fenced code, pipe tables; the rest as plain text (no guessed headings)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    stripped = [s.strip() for s in lines]
    if stripped[0] == "---" and "---" in stripped[1:]:  # YAML front matter
        lines = lines[stripped.index("---", 1) + 1 :]
    blocks: list[Block] = []
    buffer: list[str] = []

    def flush() -> None:
        blocks.extend(text_blocks("\n".join(buffer), guess_headings=False))
        buffer.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$", line)
        fence = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if heading or fence or line.strip().startswith("|"):
            flush()
        if heading:
            blocks.append(Block(heading.group(2).strip(), "heading", level=len(heading.group(1))))
        elif fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence.group(1))),
                       len(lines))
            blocks.append(Block("\n".join(lines[i + 1 : end]).strip("\n"), "code"))
            i = end
        elif line.strip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                row = re.split(r"(?<!\\)\|", lines[i].strip().strip("|"))
                cells = [c.strip().replace("\\|", "|") for c in row]
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


_HTML_DROP = ["script", "style", "nav", "footer", "noscript", "template", "head", "svg", "iframe", "object"]
_HTML_OWN = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "dl", "li", "pre", "table"}
_HTML_CONTAINERS = {"address", "article", "aside", "blockquote", "body", "caption", "center", "details",
                    "dialog", "div", "dd", "dt", "fieldset", "figcaption", "figure", "form", "header",
                    "hgroup", "html", "main", "section", "summary"}


def _parse_html(text: str) -> tuple[str | None, list[Block]]:
    """h1–h6, p, lists (one block each), pre → code, tables; loose text in containers → paragraphs."""
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import PreformattedString

    soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    for tag in soup.find_all("br"):
        tag.replace_with(" ")
    blocks: list[Block] = []
    inline: list[str] = []

    def words(tag: Any, separator: str = " ") -> str:  # "" for inline-only content: "<b>7</b>." → "7."
        return " ".join(tag.get_text(separator).split())

    def flush() -> None:
        if joined := " ".join("".join(inline).split()):
            blocks.append(Block(joined, "paragraph"))
        inline.clear()

    def list_lines(tag: Any, depth: int) -> list[str]:
        lines = []
        for item in tag.find_all(["li", "dt", "dd"], recursive=False):
            nested = [sub.extract() for sub in item.find_all(["ul", "ol", "dl"], recursive=False)]
            lines += ["  " * depth + f"- {words(item)}"] if words(item) else []
            lines += [line for sub in nested for line in list_lines(sub, depth + 1)]
        return lines

    def walk(node: Any) -> None:
        for child in list(node.children):
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # skips comments, doctypes, CDATA …
                    inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HTML_OWN or name in _HTML_CONTAINERS:
                flush()
            if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
                blocks.append(Block(words(child, ""), "heading", level=int(name[1])))
            elif name == "p":
                blocks.append(Block(words(child, ""), "paragraph"))
            elif name in ("ul", "ol", "dl", "li"):
                text = "\n".join(list_lines(child, 0)) if name != "li" else f"- {words(child)}"
                blocks.append(Block(text, "list"))
            elif name == "pre":
                blocks.append(Block(child.get_text().strip("\n"), "code"))
            elif name == "table":
                rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"], recursive=False)]
                        for tr in child.find_all("tr") if tr.find_parent("table") is child]
                blocks.append(Block(table_text(rows), "table"))
            elif name in _HTML_CONTAINERS or child.find(list(_HTML_OWN | {"div"})):
                walk(child)
                flush()
            else:
                inline.append(child.get_text())

    walk(soup)
    flush()
    return title, merge_blocks([b for b in blocks if b.text.strip()], "list", "\n")


def _parse_docx(name: str, data: bytes) -> tuple[str | None, list[Block]]:
    """Paragraphs with their styles (Heading N, Title, List …), tables in place, core-properties title."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several unrelated types for a broken package
        raise InvalidInputError(f"{name} is not a readable Word document ({type(exc).__name__}: {exc}).",
                                hint="Re-save it as .docx in Word or LibreOffice (not .doc).") from exc
    blocks: list[Block] = []
    body = document.element.body
    for element in body.xpath("./w:p | ./w:tbl | ./w:sdt/w:sdtContent/w:p | ./w:sdt/w:sdtContent/w:tbl"):
        if element.tag.endswith("}tbl"):
            table = Table(element, document)  # merged cells repeat in row.cells: keep each once
            rows = [list({cell._tc: cell.text for cell in row.cells}.values()) for row in table.rows]
            blocks.append(Block(table_text(rows), "table"))
            continue
        paragraph = Paragraph(element, document)
        if not (text := paragraph.text.strip()):
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        heading = re.match(r"Heading (\d)", style)
        if heading or style == "Title":
            blocks.append(Block(text, "heading", level=min(int(heading.group(1)), 6) if heading else 1))
        elif "List" in style or (element.pPr is not None and element.pPr.numPr is not None):
            blocks.append(Block(f"- {text}", "list"))
        else:
            blocks.append(Block(text, "paragraph"))
    first_h1 = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
    return document.core_properties.title or first_h1, merge_blocks(blocks, "list", "\n")


def _parse_csv(name: str, text: str) -> list[Block]:
    """One table block per CSV_ROWS_PER_BLOCK rows, each repeating the header row."""
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise InvalidInputError(f"{name} is not valid CSV: {exc}.",
                                hint="Re-export it as comma-separated UTF-8 text.") from exc
    if not rows:
        raise InvalidInputError(f"{name} has no rows.", hint="Upload a CSV with a header row and data.")
    header, body = rows[0], rows[1:]
    return [Block(table_text([header, *body[i : i + CSV_ROWS_PER_BLOCK]]), "table")
            for i in range(0, max(len(body), 1), CSV_ROWS_PER_BLOCK)]
