"""PDF text extraction: pages → lines with font size and weight → blocks.

Headings come from the font (lines noticeably larger than the body text, or short bold lines);
only a PDF without such styling falls back to guessing headings from the text. Running headers
and footers repeated on most pages, and bare page numbers, are dropped.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from flywheel.errors import InvalidInputError
from flywheel.knowledge.blocks import (
    ADMONITIONS,
    BOLD_FONT,
    FOLIO,
    LEADER,
    NO_HEADING_END,
    Block,
    line_blocks,
    merge_blocks,
)

_Line = tuple[str, float, bool, bool]  # text, smallest font size (0 = unknown), all bold, starts bold


def parse_pdf(name: str, data: bytes) -> tuple[str | None, list[Block], int]:
    """Text per page (pypdf); headings from font size or bold (else guessed); running lines dropped."""
    # pypdf is imported on first use, to keep it out of start-up time.
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidInputError(
                f"{name} is an encrypted (password-protected) PDF; it cannot be indexed.",
                hint="Remove the password (`qpdf --decrypt in.pdf out.pdf`, or print "
                "it to a new PDF) and upload it again.",
            )
        pages = [_styled_lines(page) for page in reader.pages]
        meta_title = str(reader.metadata.title or "") if reader.metadata else ""
    except InvalidInputError:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, ValueError, KeyError, zlib.error …)
        raise InvalidInputError(
            f"{name} is not a readable PDF ({type(exc).__name__}: {exc}).",
            hint="Check the upload is complete; re-export or re-download it.",
        ) from exc
    if not any(text.strip() for page in pages for text, *_ in page):
        raise InvalidInputError(
            f"{name} has no extractable text (a scanned or image-only PDF?).",
            hint="OCR is not supported: upload a PDF with a text layer (run OCR first, "
            "e.g. `ocrmypdf in.pdf out.pdf`).",
        )
    pages = _drop_running_lines(pages)
    levels = _font_levels(pages)
    styled = any(level for page in levels for level in page)
    blocks: list[Block] = []
    for number, (page, page_levels) in enumerate(zip(pages, levels, strict=True), 1):
        lines = [(text, level) for (text, *_), level in zip(page, page_levels, strict=True)]
        blocks += line_blocks(lines, number, guess=not styled)
    if styled:  # a heading set over several lines arrives as several heading lines of one level
        blocks = merge_blocks(blocks, "heading", " ", level=True)
    meta_title = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", meta_title).strip()
    if re.search(r"\.(docx?|pdf|indd|pptx?)$|^untitled$", meta_title, re.I):
        meta_title = ""
    return meta_title or None, blocks, len(pages)


def _styled_lines(page: Any) -> list[_Line]:
    """A page's text lines, each with its smallest effective font size and whether it is (or starts) bold."""
    chars: list[tuple[str, float, bool]] = []

    def visit(text: str, cm: Sequence[float], tm: Sequence[float], font: Any, size: float) -> None:
        scale = math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3]) or 1.0
        bold = bool(BOLD_FONT.search(str((font or {}).get("/BaseFont", ""))))
        chars.extend((c, round(float(size) * scale * 2) / 2, bold) for c in text if not c.isspace())

    lines: list[_Line] = []
    j = 0
    for line in (page.extract_text(visitor_text=visit) or "").split("\n"):
        styles = []
        for c in line:  # align the extracted text with the visited characters (same order, minus spaces)
            if not c.isspace():
                k = next((k for k in range(j, min(j + 8, len(chars))) if chars[k][0] == c), None)
                styles.append(chars[k][1:] if k is not None else (0.0, False))
                j = k + 1 if k is not None else j
        bolds = [bold for _, bold in styles]
        size = min((s for s, _ in styles), default=0.0)
        lines.append((line, size, bool(bolds) and all(bolds), bolds[:1] == [True]))
    return lines


def _drop_running_lines(pages: list[list[_Line]]) -> list[list[_Line]]:
    """Drop folios and short headers/footers repeated on most pages (in a page's first/last two lines)."""

    def edges(page: list[_Line]) -> list[int]:
        filled = [i for i, (text, *_) in enumerate(page) if text.strip()]
        return sorted(set(filled[:2] + filled[-2:]))

    def key(text: str) -> str:
        return re.sub(r"\d+", "#", " ".join(text.lower().split()))

    edge_keys = [{key(page[i][0]) for i in edges(page) if len(page[i][0]) < 80} for page in pages]
    counts = Counter(k for keys in edge_keys for k in keys)
    repeated = {k for k, n in counts.items() if len(pages) >= 3 and n >= max(3, len(pages) // 2)}
    out = []
    for page in pages:
        drop = {i for i in edges(page) if FOLIO.fullmatch(page[i][0].strip()) or key(page[i][0]) in repeated}
        out.append([line for i, line in enumerate(page) if i not in drop])
    return out


def _font_levels(pages: list[list[_Line]]) -> list[list[int]]:
    """Heading level per line from typography: sizes ≥ 1.15× body text rank 1…5, short bold lines next."""
    sizes: Counter[float] = Counter()
    for page in pages:
        for text, size, *_ in page:
            sizes[size] += len(text.strip()) if size else 0
    body = max(sizes, key=lambda s: (sizes[s], -s)) if sizes else 0.0

    def candidate(text: str) -> bool:
        s = text.strip()
        short = 0 < len(s) <= 100 and len(s.split()) <= 14
        return short and any(map(str.isalpha, s)) and not LEADER.match(s)

    big = {size for page in pages for text, size, *_ in page if size >= 1.15 * body and candidate(text)}
    large = sorted(big, reverse=True)
    rank = {size: min(i + 1, 5) for i, size in enumerate(large)}
    levels = []
    for page in pages:
        page_levels = []
        for i, (text, size, bold, _) in enumerate(page):
            s, level = text.strip(), 0
            if body and candidate(text) and size in rank:
                level = rank[size]
            elif (
                body
                and candidate(text)
                and bold
                and size >= 0.95 * body
                and len(s) <= 80
                and (s[0].isupper() or s[0].isdigit())
                and not s.endswith(NO_HEADING_END)
                and s.strip(": ") not in ADMONITIONS
            ):
                following = page[i + 1] if i + 1 < len(page) else None
                wrapped_run = following is not None and following[3] and not following[2]  # bold text runs on
                level = 0 if wrapped_run else min(len(large) + 1, 6)
            page_levels.append(level)
        levels.append(page_levels)
    return levels
