"""Markdown: ATX headings, fenced code and pipe tables; the rest as plain text."""

from __future__ import annotations

import re

from flywheel.knowledge.blocks import Block, table_text, text_blocks


def parse_markdown(text: str) -> list[Block]:
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
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence.group(1))), len(lines))
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
