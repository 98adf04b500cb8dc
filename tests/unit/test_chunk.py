"""chunk_document: the bound, no loss and determinism on many generated documents, plus structure rules."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import pytest

from flywheel.knowledge.chunk import Chunk, chunk_document, count_tokens_approx
from flywheel.knowledge.parse import Block, ParsedDocument, parse_document, with_sections

WORDS = [
    "oil",
    "brake",
    "tire",
    "pressure",
    "limit",
    "inspect",
    "torque",
    "valve",
    "engine",
    "propeller",
    "record",
    "gauge",
    "cowling",
    "N412SK",
    "0.25",
    "psi",
    "(see",
    "3-2)",
    "über",
    "magneto",
]


def document(blocks: list[Block], media_type: str = "text/plain") -> ParsedDocument:
    return ParsedDocument("doc", with_sections(blocks), media_type, None)


def random_doc(seed: int) -> ParsedDocument:
    rng = random.Random(seed)

    def words(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    blocks = []
    if rng.random() < 0.3:
        blocks.append(Block(words(20) + ".", "paragraph", page=1))  # text before any heading
    for s in range(rng.randint(1, 7)):
        title = f"{s + 1} {words(rng.choice([1, 2, 3, 3, 90]))}"  # sometimes an absurdly long heading
        blocks.append(Block(title, "heading", page=rng.randint(1, 9), level=rng.randint(1, 4)))
        for _ in range(rng.choice([0, 1, 2, 3, 5, 8])):
            kind = rng.choice(["paragraph", "paragraph", "table", "list", "code"])
            if kind == "table":
                cols = rng.randint(1, 4)
                rows = [
                    f"| {' | '.join(words(rng.randint(1, 3)) for _ in range(cols))} |"
                    for _ in range(rng.choice([1, 2, 5, 40, 100]))
                ]
                text = "\n".join(rows)
            elif kind in ("list", "code"):
                text = "\n".join(f"- {words(rng.randint(1, 30))}" for _ in range(rng.randint(1, 25)))
            else:
                ends = [".", "!", "?", ";", ""]
                sentences = [
                    words(rng.choice([3, 10, 10, 40, 40, 250])) + rng.choice(ends) for _ in range(rng.randint(1, 12))
                ]
                text = " ".join(sentences)
                if rng.random() < 0.1:
                    text += " " + "x" * rng.randint(100, 3000)  # one enormous "word"
            blocks.append(Block(text, kind, page=rng.randint(1, 9)))
    return document(blocks)


def char_counter(text: str) -> int:
    """Not additive at all: short words count 0, joins add up."""
    return len(text) // 4


def whitespace_counter(text: str) -> int:
    """Adds two "special tokens" per call, like a tokenizer with [CLS]/[SEP]."""
    return len(text.split()) + 2


def check_invariants(doc: ParsedDocument, chunks: list[Chunk], max_tokens: int, counter: Callable[[str], int]) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.token_count == counter(chunk.text) <= max_tokens, chunk
        assert chunk.text.strip()
    source = set(re.findall(r"\w+", " ".join(b.text for b in doc.blocks)))
    covered = set(re.findall(r"\w+", " ".join(c.text for c in chunks)))
    missing = source - covered
    # over-long words are cut by characters: their pieces must be there instead
    starts = {w[:10] for w in covered}
    assert all(len(word) > 40 and word[:10] in starts for word in missing), missing


@pytest.mark.parametrize("seed", range(60))
def test_bounded_lossless_and_deterministic_on_generated_documents(seed: int) -> None:
    doc = random_doc(seed)
    rng = random.Random(seed)
    for max_tokens, overlap in [(16, 0), (64, 10), (200, 30), (rng.randint(17, 400), rng.randint(0, 16))]:
        chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)
        check_invariants(doc, chunks, max_tokens, count_tokens_approx)
    assert chunks == chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)


@pytest.mark.parametrize("counter", [char_counter, whitespace_counter], ids=["chars", "special-tokens"])
@pytest.mark.parametrize("seed", range(15))
def test_the_bound_holds_for_counters_that_do_not_add_up(seed: int, counter: Callable[[str], int]) -> None:
    doc = random_doc(1000 + seed)
    chunks = chunk_document(doc, max_tokens=48, overlap_tokens=8, count_tokens=counter)
    check_invariants(doc, chunks, 48, counter)


def test_real_document_chunks_keep_pages_and_sections() -> None:
    md = "# Oil\n\n" + "\n\n".join(f"Step {i}: check the oil gauge and record it." for i in range(40))
    doc = parse_document("oil.md", md.encode())
    chunks = chunk_document(doc, max_tokens=60, overlap_tokens=10)
    check_invariants(doc, chunks, 60, count_tokens_approx)
    assert all(c.text.startswith("Oil\n") and c.section == "Oil" for c in chunks)


def test_tables_and_lists_stay_whole_when_they_fit() -> None:
    table = "| part | torque |\n" + "\n".join(f"| bolt {i} | {20 + i} in-lb |" for i in range(6))
    items = "\n".join(f"- step {i} of the procedure" for i in range(6))
    blocks = [
        Block("Torques", "heading", level=1),
        Block("Intro sentence. " * 6, "paragraph"),
        Block(table, "table"),
        Block(items, "list"),
    ]
    chunks = chunk_document(document(blocks), max_tokens=80, overlap_tokens=10)
    assert sum(table in c.text for c in chunks) == 1
    assert sum(items in c.text for c in chunks) == 1
    for chunk in chunks:  # never a table cut mid-way while it fits a chunk on its own
        assert "| bolt 3 |" not in chunk.text or "| bolt 0 |" in chunk.text


def test_a_large_table_is_split_by_rows_with_its_header_repeated() -> None:
    header = "| tail | psi |"
    table = header + "\n" + "\n".join(f"| N4{i:02d}SK | {150 + i} |" for i in range(80))
    doc = document([Block("Tire checks", "heading", level=1), Block(table, "table")])
    chunks = chunk_document(doc, max_tokens=80, overlap_tokens=20)
    assert len(chunks) > 3
    for chunk in chunks:
        body = chunk.text.split("\n", 1)[1]
        assert body.startswith(header + "\n"), "each piece starts with the header (no overlap before it)"
        assert all(re.fullmatch(r"\| (N4\d\dSK|tail) \| (\d+|psi) \|", row) for row in body.split("\n"))
    rows = [row for c in chunks for row in c.text.split("\n")[2:]]
    assert rows == table.split("\n")[1:], "every row once, in order"


def test_a_large_paragraph_is_split_at_sentences() -> None:
    sentences = [f"Sentence {i} describes the oil filter bypass valve." for i in range(30)]
    doc = document([Block("Filters", "heading", level=1), Block(" ".join(sentences), "paragraph")])
    chunks = chunk_document(doc, max_tokens=64, overlap_tokens=0)
    assert len(chunks) > 3
    for chunk in chunks:
        body = chunk.text.removeprefix("Filters\n")
        assert body.startswith("Sentence ") and body.endswith("valve."), body


def test_sections_start_new_chunks_and_prefix_their_path() -> None:
    blocks = [
        Block("Oil", "heading", level=1),
        Block("Check oil.", "paragraph"),
        Block("Brakes", "heading", level=1),
        Block("Pins", "heading", level=2),
        Block("Check pins.", "paragraph"),
    ]
    chunks = chunk_document(document(blocks, "text/markdown"))
    assert [c.text for c in chunks] == ["Oil\nCheck oil.", "Brakes > Pins\nCheck pins."]
    assert [c.section for c in chunks] == ["Oil", "Brakes > Pins"]


def test_an_empty_section_keeps_its_heading_as_a_chunk() -> None:
    blocks = [Block("Intro", "heading", level=1), Block("Appendix", "heading", level=1), Block("Text.", "paragraph")]
    chunks = chunk_document(document(blocks))
    assert [c.text for c in chunks] == ["Intro", "Appendix\nText."]


def test_text_before_the_first_heading_has_no_prefix() -> None:
    chunks = chunk_document(
        document([Block("Preamble words.", "paragraph"), Block("H", "heading", level=1), Block("Body.", "paragraph")])
    )
    assert [(c.text, c.section) for c in chunks] == [("Preamble words.", None), ("H\nBody.", "H")]


def test_overlap_repeats_whole_sentences_within_a_section_only() -> None:
    sentences = " ".join(f"Sentence number {i} about the oil gauge." for i in range(60))
    blocks = [
        Block("S", "heading", level=1),
        Block(sentences, "paragraph"),
        Block("T", "heading", level=1),
        Block("Other section text.", "paragraph"),
    ]
    chunks = chunk_document(document(blocks), max_tokens=80, overlap_tokens=20)
    in_s = [c for c in chunks if c.section == "S"]
    assert len(in_s) > 2
    for previous, chunk in itertools.pairwise(in_s):
        last_sentence = "Sentence" + previous.text.rsplit("Sentence", 1)[1]
        assert chunk.text.startswith("S\n" + last_sentence)
    assert chunks[-1].text == "T\nOther section text."
    without = chunk_document(document(blocks), max_tokens=80, overlap_tokens=0)
    assert len(without) < len(chunks)


def test_list_overlap_is_whole_lines() -> None:
    items = "\n".join(f"- item {i} check the torque" for i in range(40))
    chunks = chunk_document(
        document([Block("L", "heading", level=1), Block(items, "list")]), max_tokens=60, overlap_tokens=15
    )
    for chunk in chunks:
        assert all(re.fullmatch(r"- item \d+ check the torque", line) for line in chunk.text.split("\n")[1:] if line), (
            chunk.text
        )


def test_long_section_paths_are_shortened_from_the_left() -> None:
    path = [Block(f"Level {i} heading words", "heading", level=i) for i in range(1, 7)]
    doc = document([*path, Block("Deep text.", "paragraph")])
    chunks = chunk_document(doc, max_tokens=32, overlap_tokens=0)
    (chunk,) = [c for c in chunks if "Deep text." in c.text]
    assert chunk.text.startswith("… > ") and "Level 6 heading words\nDeep text." in chunk.text
    assert chunk.section == " > ".join(b.text for b in path)


def test_pages_span() -> None:
    blocks = [
        Block("S", "heading", level=1, page=1),
        Block("a. " * 10, "paragraph", page=1),
        Block("b. " * 10, "paragraph", page=2),
    ]
    (chunk,) = chunk_document(ParsedDocument("d", with_sections(blocks), "application/pdf", 2))
    assert (chunk.page, chunk.page_end) == (1, 2)
    assert chunk_document(document([Block("x", "paragraph")]))[0].page is None


def test_count_tokens_approx() -> None:
    assert count_tokens_approx("") == 0
    assert count_tokens_approx("oil") == 2  # ceil(1.3)
    assert count_tokens_approx("check the oil.") == 5  # ceil(3 × 1.3 + 1)
    assert count_tokens_approx("a" * 20) > count_tokens_approx("a" * 8)


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "message"),
    [
        (8, 0, "max_tokens must be at least 16"),
        (15, 0, "max_tokens must be at least 16"),
        (100, 100, "overlap_tokens must be"),
        (100, 150, "overlap_tokens must be"),
        (100, -1, "overlap_tokens must be"),
    ],
)
def test_invalid_arguments(max_tokens: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chunk_document(random_doc(0), max_tokens=max_tokens, overlap_tokens=overlap)
