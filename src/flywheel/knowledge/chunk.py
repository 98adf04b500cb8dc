"""Structure-aware, token-bounded chunking with overlap.

Blocks of one section are packed together until the next would overflow ``max_tokens``; a new
section starts a new chunk, and each chunk begins with its section path on its own line so
retrieval sees the context. Tables and lists stay whole when they fit; a table too large is split
by rows with its header row repeated; a paragraph too large is split at sentences, then words.
Inside a section, the next chunk repeats the last ~``overlap_tokens`` of the previous one (whole
sentences, or whole lines of a list/table, when possible).

Guarantees: every chunk is within ``max_tokens`` by the given counter, every word of the document
is in some chunk, ordinals run 0..n-1, and the output is deterministic. Packing adds up the counts
of the pieces (exact enough for word-piece tokenizers, which count whitespace-separated text
additively); each chunk's final text is then counted for real and, if a counter is not additive,
re-packed with every candidate counted, so the bound holds for any counter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flywheel.knowledge.blocks import Block, ParsedDocument

TokenCounter = Callable[[str], int]
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")
_WORDS = re.compile(r"\w+")
_PUNCTUATION = re.compile(r"[^\w\s]")
_LINE_KINDS = ("table", "list", "code")


def count_tokens_approx(text: str) -> int:
    """Fast word-piece estimate without a tokenizer.

    Each word counts 1.3 tokens, plus 1/6 token per character beyond 8 (long words split into more
    pieces); each punctuation character counts 1; the total is rounded up. It tracks BERT-style
    word-piece counts for English text within ~15% and is additive over whitespace joins.
    """
    words = _WORDS.findall(text)
    extra = sum(len(word) - 8 for word in words if len(word) > 8)
    return math.ceil(1.3 * len(words) + extra / 6 + len(_PUNCTUATION.findall(text)))


@dataclass(frozen=True)
class Chunk:
    """A retrieval unit: its text starts with the section path (when there is one) on its own line."""

    ordinal: int  # 0-based position in the document
    text: str
    page: int | None  # first page the chunk covers
    page_end: int | None  # last page
    section: str | None
    token_count: int  # count_tokens(text)


@dataclass(frozen=True)
class _Unit:
    text: str
    page: int | None
    kind: str = "paragraph"
    table_continues: bool = False  # a later piece of a split table (it repeats the header row)


def chunk_document(
    doc: ParsedDocument,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 30,
    count_tokens: TokenCounter = count_tokens_approx,
) -> list[Chunk]:
    """Cut a parsed document into chunks of at most ``max_tokens`` (by ``count_tokens``), in order."""
    if max_tokens < 16:
        raise ValueError(f"max_tokens must be at least 16, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be >= 0 and < max_tokens ({max_tokens}), got {overlap_tokens}")
    drafts: list[tuple[str, list[_Unit], str | None]] = []  # (prefix, units, section)
    groups = _sections(doc.blocks)
    has_content = [any(b.kind != "heading" for b in blocks) for _, blocks in groups]
    later_content: list[str | None] = [None] * len(groups)  # the section of the next group with content
    for i in range(len(groups) - 2, -1, -1):
        later_content[i] = groups[i + 1][0] if has_content[i + 1] else later_content[i + 1]
    for index, (section, blocks) in enumerate(groups):
        prefix = _prefix(section, max_tokens, count_tokens)
        content = [b for b in blocks if b.kind != "heading"]
        if not has_content[index]:
            # An empty parent section is skipped when the next section with content is inside it and
            # prefixes its full path (so the heading's words are still there).
            later = later_content[index]
            inside = section and later and later.startswith(section + " > ")
            if inside and _prefix(later, max_tokens, count_tokens).startswith(section or ""):
                continue
            prefix, content = "", [Block(section or blocks[0].text, "paragraph", blocks[0].page)]
        elif section and not prefix:  # a heading path too long to prefix: keep the heading as content
            content = [Block(b.text, "paragraph", b.page) if b.kind == "heading" else b for b in blocks]
        budget = max_tokens - count_tokens(prefix)
        piece_budget = max(budget - overlap_tokens, min(budget, 8))  # room for the overlap carried in
        units = [u for b in content for u in _split_block(b, budget, piece_budget, count_tokens)]
        current: list[_Unit] = []
        used = 0
        for unit in units:
            size = count_tokens(unit.text)
            if current and used + size > budget:
                drafts.append((prefix, current, section))
                tail = _overlap(current[-1], unit, overlap_tokens, count_tokens)
                tail_size = count_tokens(tail) if tail else 0
                fits = tail and tail_size + size <= budget
                current, used = ([_Unit(tail, current[-1].page, "overlap")], tail_size) if fits else ([], 0)
            current.append(unit)
            used += size
        if current:
            drafts.append((prefix, current, section))
    chunks: list[Chunk] = []
    for prefix, units, section in drafts:
        for text, covered in _fit(prefix, units, max_tokens, count_tokens):
            pages = [u.page for u in covered if u.page is not None]
            first, last = min(pages, default=None), max(pages, default=None)
            chunks.append(Chunk(len(chunks), text, first, last, section, count_tokens(text)))
    return chunks


def _sections(blocks: Sequence[Block]) -> list[tuple[str | None, list[Block]]]:
    """Runs of blocks under one heading path; every heading starts a run."""
    groups: list[tuple[str | None, list[Block]]] = []
    for block in blocks:
        if not groups or block.kind == "heading" or block.section != groups[-1][0]:
            groups.append((block.section, []))
        groups[-1][1].append(block)
    return groups


def _prefix(section: str | None, max_tokens: int, count: TokenCounter) -> str:
    """The section path as a first line, shortened from the left (``… > 3.2 Oil``) to fit half the budget."""
    if not section:
        return ""
    parts = section.split(" > ")
    for start in range(len(parts)):
        line = ("… > " if start else "") + " > ".join(parts[start:]) + "\n"
        if count(line) <= max_tokens // 2:
            return line
    return ""


def _join(prefix: str, units: Sequence[_Unit]) -> str:
    return prefix + "\n\n".join(u.text for u in units)


def _split_block(block: Block, whole: int, budget: int, count: TokenCounter) -> list[_Unit]:
    """A block as units: whole if it fits ``whole``, else pieces that each fit ``budget``."""
    if count(block.text) <= whole:
        return [_Unit(block.text, block.page, block.kind)]
    if block.kind == "table":
        header, *rows = block.text.split("\n")
        # no overlap goes before a later table piece (it repeats the header), so pieces may use ``whole``
        pieces = _pack(rows, whole - count(header), count, "\n") if count(header) <= budget // 2 else None
        if pieces is not None:
            return [
                _Unit(f"{header}\n{piece}", block.page, "table", table_continues=i > 0)
                for i, piece in enumerate(pieces)
            ]
    if block.kind in _LINE_KINDS:
        parts = _pack(block.text.split("\n"), budget, count, "\n")
    else:
        parts = _pack(_SENTENCE.split(block.text), budget, count, " ")
    return [_Unit(p, block.page, block.kind) for p in parts]


def _pack(parts: list[str], budget: int, count: TokenCounter, joiner: str) -> list[str]:
    """Greedily join ``parts`` into pieces within ``budget`` (summed counts); parts too large go by words."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for part in parts:
        size = count(part)
        if size > budget:
            pieces += [joiner.join(current)] if current else []
            pieces += _split_words(part, budget, count)
            current, used = [], 0
            continue
        if current and used + size > budget:
            pieces.append(joiner.join(current))
            current, used = [], 0
        current.append(part)
        used += size
    pieces += [joiner.join(current)] if current else []
    return [p for p in pieces if p.strip()]


def _split_words(text: str, budget: int, count: TokenCounter) -> list[str]:
    """Words packed within ``budget`` (summed counts); a single over-long word is cut by characters."""
    pieces: list[str] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        size = count(word)
        while size > budget and len(word) > 1:
            cut = max(1, len(word) * budget // size)
            pieces += [" ".join(current), word[:cut]] if current else [word[:cut]]
            current, used, word = [], 0, word[cut:]
            size = count(word)
        if current and used + size > budget:
            pieces.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += size
    return pieces + ([" ".join(current)] if current else [])


def _overlap(previous: _Unit, following: _Unit, overlap: int, count: TokenCounter) -> str:
    """The last ~``overlap`` tokens of ``previous``: whole sentences, else words; for a table, list or
    code block whole lines or nothing. None before a table piece (it repeats the header row instead)."""
    if overlap <= 0 or following.table_continues:
        return ""
    by_line = previous.kind in _LINE_KINDS
    text = previous.text
    splits = [text.split("\n")] if by_line else [_SENTENCE.split(text), text.split()]
    for parts in splits:
        picked: list[str] = []
        used = 0
        for part in reversed(parts[1:] if by_line and previous.kind == "table" else parts):
            used += count(part)
            if used > overlap:
                break
            picked.insert(0, part)
        if picked:
            return ("\n" if by_line else " ").join(picked)
    return ""


def _fit(
    prefix: str,
    units: list[_Unit],
    max_tokens: int,
    count: TokenCounter,
) -> list[tuple[str, list[_Unit]]]:
    """The chunk text(s) for ``units``: one if it is within ``max_tokens`` when counted for real, else a
    re-pack with every candidate text counted (for counters that do not add up over joins)."""
    text = _join(prefix, units)
    if count(text) <= max_tokens:
        return [(text, units)]
    out: list[tuple[str, list[_Unit]]] = []
    current: list[_Unit] = []
    for unit in units:
        if count(_join(prefix, [*current, unit])) <= max_tokens:
            current.append(unit)
            continue
        if current:
            out.append((_join(prefix, current), current))
            current = []
        if count(_join(prefix, [unit])) <= max_tokens:
            current = [unit]
        else:
            out += [(piece, [unit]) for piece in _verified_words(prefix, unit.text, max_tokens, count)]
    if current:
        out.append((_join(prefix, current), current))
    return out


def _verified_words(prefix: str, text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """``text`` cut into word runs whose ``prefix + run`` counts within ``max_tokens`` (checked each time)."""
    if prefix and count(prefix) >= max_tokens:
        prefix = ""
    pieces: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if count(prefix + candidate) <= max_tokens:
            current = candidate
            continue
        if current:
            pieces.append(prefix + current)
        while count(prefix + word) > max_tokens:  # cut an over-long word at the longest fitting prefix
            lo, hi = 0, len(word)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if count(prefix + word[:mid]) <= max_tokens else (lo, mid - 1)
            if lo == 0:
                raise ValueError(f"count_tokens counts {word[:1]!r} over max_tokens ({max_tokens})")
            pieces.append(prefix + word[:lo])
            word = word[lo:]
        current = word
    return pieces + ([prefix + current] if current else [])
