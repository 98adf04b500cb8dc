from __future__ import annotations

import random
import re

import pytest

from flywheel.knowledge.chunk import chunk_document, count_tokens_approx
from flywheel.knowledge.parse import Block, ParsedDocument, with_sections

WORDS = [
    "oil", "brake", "tire", "pressure", "limit", "inspect", "torque", "valve", "engine", "propeller", "record",
    "gauge", "cowling",
]


def random_doc(seed: int) -> ParsedDocument:
    rng = random.Random(seed)
    blocks = []
    for s in range(rng.randint(1, 6)):
        blocks.append(Block(f"{s + 1} Section {rng.choice(WORDS)}", "heading", level=rng.randint(1, 3)))
        for _ in range(rng.randint(0, 5)):
            kind = rng.choice(["paragraph", "paragraph", "table", "list"])
            if kind == "table":
                rows = range(rng.randint(2, 60))
                text = "\n".join(f"| {rng.choice(WORDS)} | {rng.randint(1, 999)} |" for _ in rows)
            elif kind == "list":
                text = "\n".join(f"- {' '.join(rng.choices(WORDS, k=rng.randint(2, 12)))}" for _ in range(5))
            else:
                count = rng.randint(1, 30)
                sentences = [" ".join(rng.choices(WORDS, k=rng.randint(3, 40))) + "." for _ in range(count)]
                text = " ".join(sentences)
            blocks.append(Block(text, kind, page=rng.randint(1, 9)))
    return ParsedDocument("doc", with_sections(blocks), "text/plain", None)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize(("max_tokens", "overlap"), [(64, 0), (120, 20), (200, 30)])
def test_bounded_lossless_and_deterministic(seed: int, max_tokens: int, overlap: int) -> None:
    doc = random_doc(seed)
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count <= max_tokens for c in chunks)
    assert all(count_tokens_approx(c.text) == c.token_count for c in chunks)
    source_words = re.findall(r"\w+", " ".join(b.text for b in doc.blocks))
    chunk_words = set(re.findall(r"\w+", " ".join(c.text for c in chunks)))
    assert set(source_words) <= chunk_words
    assert chunks == chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)


def test_tables_stay_whole_when_they_fit_and_split_with_header_otherwise() -> None:
    small = Block("| a | b |\n| 1 | 2 |", "table")
    big = Block("| tail | psi |\n" + "\n".join(f"| N4{i:02d}SK | {150 + i} |" for i in range(80)), "table")
    doc = ParsedDocument("t", with_sections([Block("Tables", "heading", level=1), small, big]), "text/csv", None)
    chunks = chunk_document(doc, max_tokens=80, overlap_tokens=0)
    assert "| a | b |\n| 1 | 2 |" in chunks[0].text
    big_parts = [c for c in chunks if "N4" in c.text]
    assert len(big_parts) > 1
    assert all("| tail | psi |" in c.text for c in big_parts)


def test_sections_start_new_chunks_and_prefix_their_path() -> None:
    blocks = [Block("Oil", "heading", level=1), Block("Check oil.", "paragraph"),
              Block("Brakes", "heading", level=1), Block("Check pins.", "paragraph")]
    chunks = chunk_document(ParsedDocument("d", with_sections(blocks), "text/markdown", None))
    assert [c.text for c in chunks] == ["Oil\nCheck oil.", "Brakes\nCheck pins."]
    assert [c.section for c in chunks] == ["Oil", "Brakes"]


def test_overlap_repeats_the_end_of_the_previous_chunk_within_a_section() -> None:
    sentences = " ".join(f"Sentence number {i} about the oil gauge." for i in range(60))
    doc = ParsedDocument("d", with_sections([Block("S", "heading", level=1), Block(sentences, "paragraph")]),
                         "text/plain", None)
    chunks = chunk_document(doc, max_tokens=80, overlap_tokens=20)
    assert len(chunks) > 2
    last_sentence = chunks[0].text.rsplit("Sentence", 1)[1]
    assert ("Sentence" + last_sentence) in chunks[1].text


def test_pages_span() -> None:
    blocks = [Block("S", "heading", level=1, page=1), Block("a. " * 10, "paragraph", page=1),
              Block("b. " * 10, "paragraph", page=2)]
    (chunk,) = chunk_document(ParsedDocument("d", with_sections(blocks), "application/pdf", 2))
    assert (chunk.page, chunk.page_end) == (1, 2)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(8, 0), (100, 100), (100, -1)])
def test_invalid_arguments(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(random_doc(0), max_tokens=max_tokens, overlap_tokens=overlap)
