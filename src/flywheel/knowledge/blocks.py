"""The block model every format parser produces, and the plain-text heuristics they share.

Blocks keep what chunking and citations need: headings (with level), paragraphs, lists, tables and
code, each with the page it is on (PDF) and the heading path in force (``section``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

BlockKind = Literal["heading", "paragraph", "table", "list", "code"]

NUMBERED_HEADING = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){0,4})\.?\s+[A-Z][^.!?]{1,80}$")
_CHAPTER_HEADING = re.compile(r"^(?:chapter|part|appendix)\s+(?:\d{1,3}|[IVXLC]{1,6}|[A-Z])\b[^.!?]{0,70}$", re.I)
_BULLET = re.compile(r"^\s*[-*+•▪◦‣]\s+\S")
_NUMBERED_ITEM = re.compile(r"^\s*(\d{1,3}|[a-z])[.)]\s+\S")
LEADER = re.compile(r"^(.*?\S)\s*(?:\.\s*){4,}(\S.{0,40})$")  # a TOC/index entry: "Title ....... 1-3"
_DOT_RUN = re.compile(r"(?:\.\s*){4,}")
_RULE = re.compile(r"[-=_*~#]{3,}")
FOLIO = re.compile(
    r"(?:[Pp]age\s+)?(?:\d{1,4}|[ivxlc]{1,7}|[A-Z]{1,3}-\d{1,4}|\d{1,3}-\d{1,4})"
    r"(?:\s+of\s+\d{1,4})?"
)  # a page number line: "12", "iv", "G-3", "10-2", "Page 3 of 9"
ADMONITIONS = {"NOTE", "NOTES", "CAUTION", "WARNING", "DANGER", "IMPORTANT", "TIP"}
NO_HEADING_END = (".", ",", ";", ":")
BOLD_FONT = re.compile(r"bold|black|heavy|demi", re.I)


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


def _guess_level(line: str) -> int:
    """Level of an unstyled heading line: numbered (``3.2 Oil``), ``Chapter 3 …``, short ALL CAPS; else 0."""
    match = NUMBERED_HEADING.match(line)
    if match and len(line) <= 90:
        return match.group(1).count(".") + 1
    if _CHAPTER_HEADING.match(line):
        return 1
    caps = sum(c.isalpha() for c in line) >= 3 and len(line) <= 80 and len(line.split()) <= 10
    return int(
        caps and line.upper() == line and not line.endswith(NO_HEADING_END) and line.strip("!: ") not in ADMONITIONS
    )


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
    """Plain text → headings, lists and paragraphs (see :func:`line_blocks`)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # Dot leaders inside running text (a table of contents flattened onto one line) carry no meaning
    # and cost one token per dot; a line that is a single leader entry is kept for line_blocks.
    lines = [line if len(line) <= 200 and LEADER.match(line) else _DOT_RUN.sub(" … ", line) for line in lines]
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
            leader = LEADER.match(line)
            numbered = _NUMBERED_ITEM.match(line) and (items or _starts_list(texts, i))
            if not known and (leader or numbered or _BULLET.match(line)):
                if para:
                    flush()
                items.append(f"{leader.group(1)} … {leader.group(2)}" if leader else line)
            elif (
                items
                and not known
                and (
                    raw[:1].isspace()
                    or line[:1].islower()
                    or (  # the item goes on:
                        len(texts[i - 1]) >= 0.8 * width and not texts[i - 1].endswith((".", "!", "?", ":"))
                    )
                )
            ):
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
