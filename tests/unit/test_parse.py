"""parse_document: every format's structure, pages and sections, titles, and every bad input explained."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from flywheel.errors import InvalidInputError
from flywheel.knowledge.parse import SUPPORTED_SUFFIXES, Block, parse_document

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def make_pdf(pages: list[str], *, title: str | None = None) -> bytes:
    """A real PDF with a Helvetica text layer, written by hand: one line per text line, 16pt apart.

    Lines starting with ``# `` are set in 20pt Helvetica-Bold (a typeset heading), the rest in 11pt.
    """
    fonts = (
        "<< /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> "
        "/F2 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >> >>"
    )
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        ops = []
        for n, line in enumerate(text.split("\n")):
            font, size = ("/F2", 20) if line.startswith("# ") else ("/F1", 11)
            escaped = line.removeprefix("# ").replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT {font} {size} Tf 1 0 0 1 72 {740 - 16 * n} Tm ({escaped}) Tj ET")
        stream = "\n".join(ops)
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
            f"/Resources << /Font {fonts} >> >>"
        )
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
    if title is None:
        return out.getvalue()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(out.getvalue())))
    writer.add_metadata({"/Title": title})
    return rewrite(writer)


def rewrite(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def docx_bytes(build) -> bytes:  # type: ignore[no-untyped-def]
    document = docx.Document()
    build(document)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def by_text(blocks: tuple[Block, ...], fragment: str) -> Block:
    return next(b for b in blocks if fragment in b.text)


# -- PDF ------------------------------------------------------------------------

PLAIN_PAGES = [
    "1 GENERAL\nThe brake wear pin must protrude from the housing.\n1",
    "Inspect the pin before each flight.\n2 LIMITS\nReplace the brake at 0.25 in wear.\n2",
    "2.1 Records\nLog every brake change.\n3",
]


def test_pdf_pages_sections_across_pages_and_folios() -> None:
    doc = parse_document("brakes.pdf", make_pdf(PLAIN_PAGES))
    assert (doc.page_count, doc.media_type) == (3, "application/pdf")
    assert by_text(doc.blocks, "wear pin").page == 1
    carried = by_text(doc.blocks, "before each flight")  # page 2 opens still inside section 1
    assert (carried.page, carried.section) == (2, "1 GENERAL")
    limit = by_text(doc.blocks, "0.25")
    assert (limit.page, limit.section) == (2, "2 LIMITS")
    assert by_text(doc.blocks, "Log every").section == "2 LIMITS > 2.1 Records"
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 1, 2]
    assert not any(b.text.strip() in {"1", "2", "3"} for b in doc.blocks), "page numbers are noise"
    assert doc.title == "brakes"  # a numbered heading is not a title; no metadata title → the file stem


def test_pdf_typeset_headings_running_headers_and_metadata_title() -> None:
    header = "ACME PW127M Maintenance Manual"
    pages = [
        f"{header}\n# Oil System\nCheck the oil level within 30 minutes of shutdown.\nPage 1 of 3",
        f"{header}\nTop up with approved oil only.\n# Filters\nReplace the filter every 400 hours.\nPage 2 of 3",
        f"{header}\n# ENGINE LIMITS\nDo not exceed 1200 C ITT.\nPage 3 of 3",
    ]
    doc = parse_document("manual.pdf", make_pdf(pages, title="PW127M Manual"))
    assert doc.title == "PW127M Manual"
    assert [(b.text, b.page) for b in doc.blocks if b.kind == "heading"] == [
        ("Oil System", 1),
        ("Filters", 2),
        ("ENGINE LIMITS", 3),
    ]
    assert by_text(doc.blocks, "approved oil").section == "Oil System"
    assert by_text(doc.blocks, "400 hours").section == "Filters"
    text = "\n".join(b.text for b in doc.blocks)
    assert header not in text and "Page 2 of 3" not in text


def test_pdf_table_of_contents_lines_become_a_list() -> None:
    page = "Contents\nGeneral Requirements .................. 1-1\nPower & Weight .................. 1-2"
    doc = parse_document("toc.pdf", make_pdf([page, "Body text on the second page."]))
    toc = by_text(doc.blocks, "General Requirements")
    assert toc.kind == "list"
    assert toc.text == "General Requirements … 1-1\nPower & Weight … 1-2"


def test_pdf_numbered_items_wrapped_over_lines_stay_one_list() -> None:
    first = "1. Install the propeller ground lock and confirm that hotel mode is off on the aircraft"
    rest = "2. Look at each blade.\n3. Record the findings.\nEnd of task."
    page = f"# Procedure\n{first}\nN402SK before you start.\n{rest}"
    doc = parse_document("steps.pdf", make_pdf([page]))
    steps = by_text(doc.blocks, "Install")
    assert steps.kind == "list" and steps.section == "Procedure"
    assert by_text(doc.blocks, "End of task").kind == "paragraph"
    assert steps.text.split("\n") == [
        f"{first} N402SK before you start.",
        "2. Look at each blade.",
        "3. Record the findings.",
    ]


@pytest.mark.parametrize("user_password", ["", "secret"])
def test_encrypted_pdf_is_refused_even_with_an_empty_password(user_password: str) -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(PLAIN_PAGES))))
    writer.encrypt(user_password=user_password, owner_password="owner")
    with pytest.raises(InvalidInputError, match="encrypted") as info:
        parse_document("locked.pdf", rewrite(writer))
    assert "Remove the password" in (info.value.hint or "")


@pytest.mark.parametrize("data", [b"%PDF-1.4 not really a pdf", make_pdf(PLAIN_PAGES)[:300], b"GIF89a...."])
def test_corrupt_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInputError, match=r"not a readable PDF|no extractable text") as info:
        parse_document("broken.pdf", data)
    assert info.value.hint


def test_scanned_pdf_without_text_says_ocr_is_not_supported() -> None:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.add_blank_page(612, 792)
    with pytest.raises(InvalidInputError, match="no extractable text") as info:
        parse_document("scan.pdf", rewrite(writer))
    assert "OCR is not supported" in (info.value.hint or "")


def shared_pdf(name: str) -> Path:
    path = SHARED / "faa_powerplant" / name
    if not path.exists():
        pytest.skip(
            f"{path} is absent: ../shared/data (next to the repository) exists only in the Flywheel workspace and CI"
        )
    return path


def test_real_faa_toc_pdf_has_text_on_every_page() -> None:
    path = shared_pdf("02_amtp_toc.pdf")
    doc = parse_document(path.name, path.read_bytes())
    assert doc.page_count and doc.page_count > 1
    assert {b.page for b in doc.blocks} == set(range(1, doc.page_count + 1))
    assert doc.title == "AMT Handbook - Powerplant (FAA-H-8083-32B)"
    entry = by_text(doc.blocks, "Fuel Economy")
    assert entry.kind == "list" and entry.section is not None and "Chapter 1" in entry.section


def test_real_faa_glossary_pdf_sections_follow_the_letter_headings() -> None:
    path = shared_pdf("14_amtp_glossary.pdf")
    doc = parse_document(path.name, path.read_bytes())
    assert doc.page_count and doc.page_count > 10
    assert by_text(doc.blocks, "Abradable strip.").section == "Glossary > A"
    assert by_text(doc.blocks, "Yaw.").section == "Glossary > Y"
    assert not any(b.text.startswith("G-") for b in doc.blocks), "folios such as G-2 are dropped"


# -- DOCX ------------------------------------------------------------------------


def test_docx_headings_lists_and_tables_in_document_order() -> None:
    def build(document) -> None:  # type: ignore[no-untyped-def]
        document.add_paragraph("Issued by engineering.")
        document.add_heading("Tire pressures", level=1)
        document.add_paragraph("Check tires cold.")
        table = document.add_table(rows=2, cols=2)
        table.cell(0, 0).text, table.cell(0, 1).text = "Gear", "psi"
        table.cell(1, 0).text, table.cell(1, 1).text = "Main", "158"
        document.add_heading("Records", level=2)
        document.add_paragraph("Gauge serial", style="List Bullet")
        document.add_paragraph("Reading", style="List Bullet")
        document.add_paragraph("Log the reading.")

    doc = parse_document("tires.docx", docx_bytes(build))
    assert doc.title == "Tire pressures"
    assert [b.kind for b in doc.blocks] == [
        "paragraph",
        "heading",
        "paragraph",
        "table",
        "heading",
        "list",
        "paragraph",
    ]
    assert by_text(doc.blocks, "Gear").text == "| Gear | psi |\n| Main | 158 |"
    assert by_text(doc.blocks, "Gauge").text == "- Gauge serial\n- Reading"
    assert doc.blocks[-1].section == "Tire pressures > Records"
    assert doc.blocks[0].section is None


def test_docx_core_title_wins_and_merged_cells_appear_once() -> None:
    def build(document) -> None:  # type: ignore[no-untyped-def]
        document.core_properties.title = "Wheel shop manual"
        document.add_heading("Scope", level=1)
        table = document.add_table(rows=2, cols=3)
        merged = table.cell(0, 0).merge(table.cell(0, 2))
        merged.text = "Limits"
        for col, value in enumerate(["a", "b", "c"]):
            table.cell(1, col).text = value

    doc = parse_document("wheels.docx", docx_bytes(build))
    assert doc.title == "Wheel shop manual"
    assert by_text(doc.blocks, "Limits").text == "| Limits |\n| a | b | c |"


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize("data", [b"PK\x03\x04 broken zip", b"plain text", zip_bytes({"a.txt": "x"})])
def test_corrupt_docx_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInputError, match="not a readable Word document") as info:
        parse_document("x.docx", data)
    assert "docx" in (info.value.hint or "")


# -- HTML, Markdown, TXT, CSV ------------------------------------------------------------------------


def test_html_drops_chrome_and_keeps_structure() -> None:
    html = b"""<!doctype html><html><head><title>Refunds</title><style>p{}</style></head><body>
    <nav>menu</nav><script>alert(1)</script><h1>Refund policy</h1><p>Refunds within <b>7 days</b>.</p>
    <p>Line<br>break</p>
    <div>Loose text in a div is kept.</div><!-- a comment -->
    <ul><li>Card<ul><li>Visa</li></ul></li><li>Voucher</li></ul>
    <h2>Fees</h2><table><tr><th>Fare</th><th>Fee</th></tr><tr><td>Basic</td><td>$50</td></tr></table>
    <pre>refund --id 42\n  --force</pre><footer>(c) 2026</footer></body></html>"""
    doc = parse_document("refunds.html", html)
    assert doc.title == "Refunds"
    text = "\n".join(b.text for b in doc.blocks)
    for noise in ("alert", "menu", "(c) 2026", "a comment", "p{}"):
        assert noise not in text
    assert [b.kind for b in doc.blocks] == [
        "heading",
        "paragraph",
        "paragraph",
        "paragraph",
        "list",
        "heading",
        "table",
        "code",
    ]
    assert by_text(doc.blocks, "Line").text == "Line break"
    assert by_text(doc.blocks, "Refunds within").text == "Refunds within 7 days."
    assert by_text(doc.blocks, "Card").text == "- Card\n  - Visa\n- Voucher"
    assert by_text(doc.blocks, "Fare").text == "| Fare | Fee |\n| Basic | $50 |"
    assert by_text(doc.blocks, "Fare").section == "Refund policy > Fees"
    assert by_text(doc.blocks, "refund --id").text == "refund --id 42\n  --force"


def test_html_title_falls_back_to_the_first_h1() -> None:
    doc = parse_document("p.htm", b"<p>Intro</p><h1>Hangar rules</h1><p>No smoking.</p>")
    assert doc.title == "Hangar rules"


MARKDOWN = b"""---
author: ops
---
Intro paragraph before the title.

# Oil servicing

## 1 Scope
Covers the PW127M.

CAUTION

Hot oil burns.

## 2 Procedure
- Open the cowling
  and secure it
- Check the sight gauge

| Item | Limit |
|------|-------|
| Oil  | 5 qt  |
| Note | a \\| b |

```bash
# not a heading
check-oil
```
"""


def test_markdown_structure_sections_tables_and_code() -> None:
    doc = parse_document("oil.md", MARKDOWN)
    assert doc.title == "Oil servicing"
    assert [b.kind for b in doc.blocks] == [
        "paragraph",
        "heading",
        "heading",
        "paragraph",
        "paragraph",
        "paragraph",
        "heading",
        "list",
        "table",
        "code",
    ]
    assert "author" not in doc.blocks[0].text
    assert by_text(doc.blocks, "CAUTION").kind == "paragraph", "no guessed headings in Markdown"
    assert by_text(doc.blocks, "Hot oil").section == "Oil servicing > 1 Scope"
    assert by_text(doc.blocks, "cowling").text == "- Open the cowling and secure it\n- Check the sight gauge"
    table = by_text(doc.blocks, "| Item")
    assert table.text == "| Item | Limit |\n| Oil | 5 qt |\n| Note | a \\| b |"
    assert table.section == "Oil servicing > 2 Procedure"
    assert by_text(doc.blocks, "check-oil").text == "# not a heading\ncheck-oil"


def test_text_headings_lists_and_letterhead_title() -> None:
    text = (
        b"SKYLARK REGIONAL AIRWAYS\nFUEL POLICY\n\n1. PURPOSE\n\nCarry reserve fuel.\n\nWARNING\n\n"
        b"Never dispatch below minimum fuel.\n\nFuel Limits\n===========\n\n"
        b"1. Taxi fuel\n2. Trip fuel\n\n"
        b"2.1 Final reserve\n\nFinal reserve 45 minutes."
    )
    doc = parse_document("fuel.txt", text)
    assert doc.title == "SKYLARK REGIONAL AIRWAYS — FUEL POLICY"
    assert doc.media_type == "text/plain" and doc.page_count is None
    assert by_text(doc.blocks, "dispatch").section == "1. PURPOSE", "WARNING is not a heading"
    assert by_text(doc.blocks, "Taxi fuel").kind == "list"
    assert by_text(doc.blocks, "45 minutes").section == "Fuel Limits > 2.1 Final reserve"


def test_csv_becomes_tables_of_20_rows_with_the_header_repeated() -> None:
    rows = "tail;psi;note\n" + "\n".join(f"N4{i:02d}SK;{150 + i};ok" for i in range(45))
    doc = parse_document("tire_checks.csv", rows.encode())
    assert doc.title == "tire checks"
    assert [b.kind for b in doc.blocks] == ["table"] * 3
    assert all(b.text.startswith("| tail | psi | note |\n") for b in doc.blocks)
    assert [b.text.count("\n") for b in doc.blocks] == [20, 20, 5]
    assert "| N444SK | 194 | ok |" in doc.blocks[-1].text


def test_csv_header_only_and_pipes_in_cells() -> None:
    assert parse_document("h.csv", b"a,b\n").blocks[0].text == "| a | b |"
    assert parse_document("p.csv", b'k,v\nx,"1|2"\n').blocks[0].text == "| k | v |\n| x | 1\\|2 |"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-8"])
def test_unicode_encodings_are_read(encoding: str) -> None:
    assert parse_document("n.txt", "Öl prüfen.".encode(encoding)).blocks[0].text == "Öl prüfen."


def test_every_block_carries_the_heading_path() -> None:
    doc = parse_document("d.md", b"# A\n\n## B\n\n### C\n\ntext\n\n## D\n\nmore\n\n# E\n\nlast")
    assert [(b.text, b.section) for b in doc.blocks if b.kind != "heading"] == [
        ("text", "A > B > C"),
        ("more", "A > D"),
        ("last", "E"),
    ]


# -- bad inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.exe", b"MZ", "unsupported file type .exe"),
        ("noext", b"hello", r"unsupported file type \(no extension\)"),
        ("manual.doc", b"\xd0\xcf\x11\xe0", "unsupported file type .doc"),
        ("", b"# x", "plain file name"),
        ("../secret.md", b"# x", "plain file name"),
        ("..", b"# x", "plain file name"),
        ("dir/file.md", b"# x", "plain file name"),
        ("a\\b.md", b"# x", "plain file name"),
        ("nul\x00.md", b"# x", "plain file name"),
        ("empty.md", b"", "is empty"),
        ("blank.md", b"   \n\t\n", "is empty"),
        ("blank16.txt", " \n ".encode("utf-16"), "is empty"),
        ("blank.pdf", b"\n\n", "is empty"),
        ("binary.txt", b"\x00\x01\x02\xfe", "not readable text"),
        ("utf16-no-bom.txt", "hello".encode("utf-16-le"), "not readable text"),
        ("latin1.txt", "café crème".encode("latin-1"), "not readable text"),
        ("junk.html", bytes(range(256)), "not readable text"),
        ("rules.md", b"---\n***\n", "contains no text"),
        ("empty.html", b"<html><script>x()</script></html>", "contains no text"),
    ],
)
def test_bad_inputs_are_explained(name: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        parse_document(name, data)
    assert info.value.hint and info.value.status_code == 422


def test_unsupported_type_lists_the_supported_ones() -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_document("slides.pptx", b"x")
    assert all(suffix in (info.value.hint or "") for suffix in SUPPORTED_SUFFIXES)


def test_size_limit_names_the_size_and_the_limit() -> None:
    with pytest.raises(InvalidInputError, match=r"is 2,000 bytes, over the 1,000 bytes limit") as info:
        parse_document("big.txt", b"x" * 2000, max_bytes=1000)
    assert "max_file_mb" in (info.value.hint or "")
    with pytest.raises(InvalidInputError, match=r"is 3\.0 MB, over the 2\.0 MB limit"):
        parse_document("big.md", b"x" * (3 << 20), max_bytes=2 << 20)
    assert parse_document("ok.txt", b"x" * 1000, max_bytes=1000).blocks


def test_a_flattened_table_of_contents_loses_its_dot_leaders() -> None:
    """Regression: a TOC page extracted onto one line kept thousands of dots (one token each)."""
    line = " ".join(f"Section {i} {'.' * 120}1-{i}" for i in range(60))
    doc = parse_document("toc.txt", line.encode())
    text = " ".join(b.text for b in doc.blocks)
    assert "...." not in text
    assert "Section 59" in text and "1-59" in text
