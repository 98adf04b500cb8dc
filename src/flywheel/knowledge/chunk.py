"""Structure-aware, token-bounded chunking with overlap.

Blocks of one section are packed together until the next would overflow ``max_tokens``; a new
section starts a new chunk, and each chunk begins with its section path so retrieval sees the
context. Tables and lists stay whole when they fit; a table too large is split by rows with its
header repeated; a paragraph too large is split at sentences, then words. Inside a section, the
next chunk repeats the last ~``overlap_tokens`` of the previous one (whole sentences when
possible). Guarantees: every chunk is within ``max_tokens`` by the given counter, no text is lost,
and the result is deterministic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from flywheel.knowledge.parse import Block, ParsedDocument

TokenCounter = Callable[[str], int]
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")
_PIECES = re.compile(r"\w+|[^\w\s]")


def count_tokens_approx(text: str) -> int:
    """Fast word-piece estimate: words count 1.3 tokens (long words more), punctuation 1 each."""
    total = 0.0
    for piece in _PIECES.findall(text):
        total += 1 if not piece[0].isalnum() else 1.3 + max(0, len(piece) - 8) / 6
    return math.ceil(total)


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    page: int | None
    page_end: int | None
    section: str | None
    token_count: int


@dataclass(frozen=True)
class _Unit:
    text: str
    page: int | None


def _split_words(text: str, budget: int, count: TokenCounter) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        size = count(word)
        while size > budget:  # a single enormous "word": cut it by characters
            cut = max(1, len(word) * budget // size)
            if current:
                parts.append(" ".join(current))
                current, used = [], 0
            parts.append(word[:cut])
            word = word[cut:]
            size = count(word)
        if current and used + size > budget:
            parts.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += size
    if current:
        parts.append(" ".join(current))
    return parts


def _split_block(block: Block, whole: int, budget: int, count: TokenCounter) -> list[_Unit]:
    """A block as units: whole if it fits ``whole``, else pieces that each fit ``budget``."""
    if count(block.text) <= whole:
        return [_Unit(block.text, block.page)]
    if block.kind == "table":
        rows = block.text.split("\n")
        header, units, current = rows[0], [], [rows[0]]
        for row in rows[1:]:
            if len(current) > 1 and count("\n".join([*current, row])) > budget:
                units.append("\n".join(current))
                current = [header]
            current.append(row)
        units.append("\n".join(current))
        pieces = [p for unit in units for p in ([unit] if count(unit) <= budget else _split_words(unit, budget, count))]
        return [_Unit(p, block.page) for p in pieces]
    separator = "\n" if block.kind in ("list", "code") else " "
    sentences = block.text.split("\n") if separator == "\n" else _SENTENCE.split(block.text)
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for sentence in sentences:
        size = count(sentence)
        if size > budget:
            if current:
                pieces.append(separator.join(current))
                current, used = [], 0
            pieces.extend(_split_words(sentence, budget, count))
            continue
        if current and used + size > budget:
            pieces.append(separator.join(current))
            current, used = [], 0
        current.append(sentence)
        used += size
    if current:
        pieces.append(separator.join(current))
    return [_Unit(p, block.page) for p in pieces]


def _overlap_tail(text: str, overlap: int, count: TokenCounter) -> str:
    """The last ~``overlap`` tokens of ``text``: whole sentences if they fit, else trailing words."""
    if overlap <= 0:
        return ""
    for unit_split, joiner in ((_SENTENCE.split, " "), (str.split, " ")):
        picked: list[str] = []
        used = 0
        for piece in reversed(unit_split(text)):
            size = count(piece)
            if used + size > overlap:
                break
            picked.insert(0, piece)
            used += size
        if picked:
            return joiner.join(picked)
    return ""


def _sections(doc: ParsedDocument) -> list[tuple[str | None, list[Block]]]:
    groups: list[tuple[str | None, list[Block]]] = []
    for block in doc.blocks:
        if not groups or block.kind == "heading" or block.section != groups[-1][0]:
            groups.append((block.section, []))
        groups[-1][1].append(block)
    return groups


def chunk_document(
    doc: ParsedDocument,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 30,
    count_tokens: TokenCounter = count_tokens_approx,
) -> list[Chunk]:
    """Cut a parsed document into chunks of at most ``max_tokens`` (by ``count_tokens``)."""
    if max_tokens < 16:
        raise ValueError(f"max_tokens must be at least 16, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be in [0, max_tokens), got {overlap_tokens} with max {max_tokens}")
    raw: list[tuple[str, int | None, int | None, str | None]] = []
    for section, blocks in _sections(doc):
        prefix = f"{section}\n" if section else ""
        budget = max(max_tokens - count_tokens(prefix), 8) if prefix else max_tokens
        if count_tokens(prefix) > max_tokens // 2:  # an absurdly long heading path: keep its end
            prefix, budget = "", max_tokens
        content = [b for b in blocks if b.kind != "heading"]
        if not content:
            heading = blocks[0]
            for piece in _split_words(heading.text, max_tokens, count_tokens):
                raw.append((piece if prefix == "" else (section or piece), heading.page, heading.page, section))
            continue
        # Pieces of a split block leave room for the overlap carried in from the previous chunk.
        piece_budget = max(budget - overlap_tokens, 8)
        units = [u for b in content for u in _split_block(b, budget, piece_budget, count_tokens)]
        # Word-piece counts add up across whitespace joins, so a chunk's size is the sum of its units'.
        current: list[_Unit] = []
        used = 0
        for unit in units:
            size = count_tokens(unit.text)
            if current and used + size > budget:
                raw.append(_emit(prefix, current, section))
                tail = _overlap_tail(current[-1].text, overlap_tokens, count_tokens) if overlap_tokens else ""
                current, used = ([_Unit(tail, current[-1].page)], count_tokens(tail)) if tail else ([], 0)
                if current and used + size > budget:
                    current, used = [], 0
            current.append(unit)
            used += size
        if current:
            raw.append(_emit(prefix, current, section))
    chunks = []
    for text, page, page_end, section in raw:
        size = count_tokens(text)  # the guarantee is checked on the final text, whatever the counter
        pieces = [(text, size)] if size <= max_tokens else [
            (piece, count_tokens(piece)) for piece in _split_words(text, max_tokens, count_tokens)
        ]
        for piece, piece_size in pieces:
            chunks.append(Chunk(len(chunks), piece, page, page_end, section, piece_size))
    return chunks


def _emit(prefix: str, units: list[_Unit], section: str | None) -> tuple[str, int | None, int | None, str | None]:
    pages = [u.page for u in units if u.page is not None]
    text = prefix + "\n\n".join(u.text for u in units)
    return text, min(pages) if pages else None, max(pages) if pages else None, section
