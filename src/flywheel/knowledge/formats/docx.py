"""Word (.docx): paragraphs with their styles, tables in place, the core-properties title."""

from __future__ import annotations

import io
import re

from flywheel.errors import InvalidInputError
from flywheel.knowledge.blocks import Block, merge_blocks, table_text


def parse_docx(name: str, data: bytes) -> tuple[str | None, list[Block]]:
    """Paragraphs with their styles (Heading N, Title, List …), tables in place, core-properties title."""
    # python-docx (lxml) is imported on first use, to keep it out of start-up time.
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several unrelated types for a broken package
        raise InvalidInputError(
            f"{name} is not a readable Word document ({type(exc).__name__}: {exc}).",
            hint="Re-save it as .docx in Word or LibreOffice (not .doc).",
        ) from exc
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
