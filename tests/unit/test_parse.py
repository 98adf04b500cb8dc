from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from flywheel.errors import InvalidInputError
from flywheel.knowledge.parse import parse_document

from ..conftest import SHARED_DATA

MARKDOWN = b"""# Oil servicing

## 1 Scope
Covers the PW127M.

## 2 Procedure
- Open the cowling
- Check the sight gauge

| Item | Limit |
|------|-------|
| Oil  | 5 qt  |

```
code block
```
"""


def minimal_pdf(pages: list[str]) -> bytes:
    """A real multi-page PDF with a Helvetica text layer, written by hand (no PDF library needed)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        lines = " ".join(f"({line}) Tj 0 -16 Td" for line in text.split("\n"))
        stream = f"BT /F1 12 Tf 72 720 Td {lines} ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
                       "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


PDF_PAGES = ["1 GENERAL\nThe brake wear pin must protrude.", "2 LIMITS\nReplace the brake at 0.25 in wear."]


def test_markdown_structure_sections_tables_and_code() -> None:
    doc = parse_document("oil.md", MARKDOWN)
    assert doc.title == "Oil servicing"
    kinds = [b.kind for b in doc.blocks]
    assert kinds == ["heading", "heading", "paragraph", "heading", "list", "table", "code"]
    table = next(b for b in doc.blocks if b.kind == "table")
    assert table.section == "Oil servicing > 2 Procedure"
    assert "| Oil | 5 qt |" in table.text


def test_pdf_pages_and_sections(tmp_path: Path) -> None:
    doc = parse_document("brakes.pdf", minimal_pdf(PDF_PAGES))
    assert doc.page_count == 2
    limit = next(b for b in doc.blocks if "0.25" in b.text)
    assert limit.page == 2
    assert limit.section == "2 LIMITS"


def test_encrypted_pdf_is_refused() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(minimal_pdf(PDF_PAGES))))
    writer.encrypt(user_password="", owner_password="secret")
    data = io.BytesIO()
    writer.write(data)
    with pytest.raises(InvalidInputError, match="encrypted") as info:
        parse_document("locked.pdf", data.getvalue())
    assert "password" in (info.value.hint or "")


@pytest.mark.parametrize("data", [b"%PDF-1.4 not really", minimal_pdf(PDF_PAGES)[:300]])
def test_corrupt_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInputError, match=r"not a readable PDF|no extractable text"):
        parse_document("broken.pdf", data)


def test_docx_headings_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Tire pressures", level=1)
    document.add_paragraph("Check tires cold.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Gear", "psi"
    table.cell(1, 0).text, table.cell(1, 1).text = "Main", "158"
    document.add_heading("Records", level=2)
    document.add_paragraph("Log the reading.")
    buffer = io.BytesIO()
    document.save(buffer)
    doc = parse_document("tires.docx", buffer.getvalue())
    assert doc.title == "Tires pressures".replace("Tires", "Tire")
    assert [b.kind for b in doc.blocks] == ["heading", "paragraph", "table", "heading", "paragraph"]
    assert doc.blocks[2].text == "| Gear | psi |\n| Main | 158 |"
    assert doc.blocks[-1].section == "Tire pressures > Records"


def test_corrupt_docx_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not a readable Word document"):
        parse_document("x.docx", b"PK\x03\x04 broken zip")


def test_html_drops_scripts_and_keeps_structure() -> None:
    html = b"""<html><head><title>Refunds</title><script>alert(1)</script></head><body>
    <nav>menu</nav><h1>Refund policy</h1><p>Refunds within 7 days.</p>
    <ul><li>Card</li><li>Voucher</li></ul><table><tr><th>Fare</th><th>Fee</th></tr><tr><td>Basic</td><td>$50</td></tr>
    </table></body></html>"""
    doc = parse_document("refunds.html", html)
    assert doc.title == "Refunds"
    text = " ".join(b.text for b in doc.blocks)
    assert "alert" not in text and "menu" not in text
    assert [b.kind for b in doc.blocks] == ["heading", "paragraph", "list", "table"]


def test_csv_becomes_tables_with_the_header_repeated() -> None:
    rows = "tail,psi\n" + "\n".join(f"N4{i:02d}SK,{150 + i}" for i in range(45))
    doc = parse_document("tires.csv", rows.encode())
    assert len(doc.blocks) == 3
    assert all(b.text.startswith("| tail | psi |") for b in doc.blocks)


def test_text_headings_and_letterhead_title() -> None:
    text = (b"SKYLARK REGIONAL AIRWAYS\nFUEL POLICY\n\n1. PURPOSE\n\nCarry reserve fuel.\n\n"
            b"2. LIMITS\n\nFinal reserve 45 minutes.")
    doc = parse_document("fuel.txt", text)
    assert doc.title == "SKYLARK REGIONAL AIRWAYS — FUEL POLICY"
    assert next(b for b in doc.blocks if "45 minutes" in b.text).section.endswith("2. LIMITS")


def test_utf16_with_bom_is_read() -> None:
    assert parse_document("n.txt", "Öl prüfen.".encode("utf-16")).blocks[0].text == "Öl prüfen."


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.exe", b"MZ", "unsupported file type"),
        ("noext", b"hello", "unsupported file type"),
        ("../secret.md", b"# x", "plain file name"),
        ("dir/file.md", b"# x", "plain file name"),
        ("a\\b.md", b"# x", "plain file name"),
        ("empty.md", b"   \n", "is empty"),
        ("binary.txt", b"\x00\x01\x02\xfe", "not readable text"),
        ("latin1.txt", "café crème".encode("latin-1"), "not readable text"),
    ],
)
def test_bad_inputs_are_explained(name: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        parse_document(name, data)
    assert info.value.hint


def test_size_limit() -> None:
    with pytest.raises(InvalidInputError, match=r"over the 0\.0 MB limit"):
        parse_document("big.txt", b"x" * 2000, max_bytes=1000)


def test_real_faa_pdf_pages() -> None:
    path = SHARED_DATA / "faa_powerplant" / "14_amtp_glossary.pdf"
    if not path.exists():
        pytest.skip("../shared/data is absent (it exists only in the Flywheel workspace and CI)")
    doc = parse_document(path.name, path.read_bytes())
    assert doc.page_count and doc.page_count > 1
    assert {b.page for b in doc.blocks} == set(range(1, doc.page_count + 1))
