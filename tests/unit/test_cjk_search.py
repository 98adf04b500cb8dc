"""Japanese/CJK documents: language detection, word segmentation, keyword search with the ACL,
indexes from before CJK support, and the index's record of its embedder."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from flywheel.config import load_settings
from flywheel.errors import EmbedderMismatchError
from flywheel.knowledge.base import KnowledgeBase
from flywheel.knowledge.index import LANGUAGE, SEGMENTED, TABLE, ChunkIndex, chunk_schema
from flywheel.knowledge.language import detect_language, has_cjk, segment
from flywheel.knowledge.reindex import COMPLETE_TAG, STAGING, reindex
from tests.unit.serve_helpers import OIL, HashEmbedder, alice_and_frank

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "knowledge"
BULLETIN = SAMPLES / "engineering" / "eb-2026-02-atr-brake-temp-sensor-ja.md"
FAQ = SAMPLES / "public" / "baggage-faq-ja.md"


class RenamedHashEmbedder(HashEmbedder):
    """Same vector size as HashEmbedder, different model: its vectors must not mix with the index's."""

    name = "hash-v2"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("エンジンオイルの補給は飛行後30分以内に行ってください。", "ja"),
        ("受託手荷物の料金", "ja"),
        ("行李托运重量限制是多少", "zh"),
        ("수하물 무게 제한은 얼마입니까", "ko"),
        ("Check the engine oil level 5 to 30 minutes after shutdown.", "und"),
        ("The Japanese word for baggage is 手荷物 and it appears once in this long English sentence.", "und"),
        ("部品番号 SKP-CON-32-0418 のコネクターを交換する", "ja"),
        ("12345 --- !!!", "und"),
    ],
)
def test_language_is_detected_from_the_scripts_of_the_text(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_a_japanese_sentence_becomes_several_words() -> None:
    words = segment("防水シーラントは継ぎ目全周に塗布し、4時間硬化させる。").split()
    assert len(words) >= 5
    assert {"防水", "シーラント", "硬化"} <= set(words)
    assert "は" not in words and "、" not in words  # particles and punctuation carry no search meaning


def test_text_without_cjk_is_left_exactly_as_it_was() -> None:
    text = "Check the  oil, then torque to 2.3 Nm (SKP-CON-32-0418)."
    assert not has_cjk(text)
    assert segment(text) == text


def test_part_numbers_inside_japanese_text_stay_whole() -> None:
    assert "SKP-CON-32-0418" in segment("防水型コネクターSKP-CON-32-0418に交換する").split()


def test_queries_and_documents_are_split_the_same_way() -> None:
    sentence = "ATR 72-600 型機の頭上の収納棚は小さいため、多くのキャスター付きバッグは入りません。"
    passage = set(segment(sentence).split())
    for query in ("頭上の収納棚", "キャスター付きバッグは入りますか？", "収納棚が小さい"):
        assert set(segment(query).split()) & passage, query
    assert set(segment("収納棚").split()) <= passage


@pytest.fixture()
def kb(tmp_path: Path) -> KnowledgeBase:
    return alice_and_frank(
        tmp_path / "home",
        {
            "mechanics": [(BULLETIN.name, BULLETIN.read_bytes())],
            "everyone": [(FAQ.name, FAQ.read_bytes()), ("oil.md", OIL)],
        },
    )


def test_japanese_keyword_search_finds_the_chunk_that_holds_the_answer(kb: KnowledgeBase) -> None:
    # Before CJK segmentation, a whole Japanese sentence was one BM25 token: this returned nothing.
    hits = kb.search(kb.principal("frank"), "モバイルバッテリーは預けられますか", mode="text", k=3)
    assert hits and hits[0].source == FAQ.name
    assert "モバイルバッテリー" in hits[0].text
    hits = kb.search(kb.principal("alice"), "コネクターの締付けトルク", mode="text", k=3)
    assert hits and hits[0].source == BULLETIN.name and "2.3 Nm" in hits[0].text


def test_japanese_keyword_search_respects_the_acl(kb: KnowledgeBase) -> None:
    query = "防水シーラント キットはどこに保管されていますか"
    assert any(h.source == BULLETIN.name for h in kb.search(kb.principal("alice"), query, mode="text"))
    for mode in ("text", "hybrid", "vector"):
        hits = kb.search(kb.principal("frank"), query, mode=mode)  # type: ignore[arg-type]
        assert all(h.source != BULLETIN.name and "KX-SAKURA-3307" not in h.text for h in hits)
        assert all("everyone" in h.groups for h in hits)


def test_english_keyword_search_is_unchanged(kb: KnowledgeBase) -> None:
    hits = kb.search(kb.principal("frank"), "engine oil level shutdown", mode="text", k=3)
    assert hits[0].source == "oil.md"
    assert hits[0].language == "und"


def test_the_detected_language_is_recorded_on_each_chunk(kb: KnowledgeBase) -> None:
    rows = kb.index.table.to_arrow().select(["source", LANGUAGE, SEGMENTED]).to_pylist()
    for row in rows:
        if row["source"] == "oil.md":
            assert row[LANGUAGE] == "und" and row[SEGMENTED] is None
        else:
            assert row[LANGUAGE] == "ja" and len(row[SEGMENTED].split()) > 5
    hits = kb.search(kb.principal("frank"), "手荷物", mode="text")
    assert hits and all(h.language == "ja" for h in hits)


def legacy_index(uri: str, dimensions: int) -> None:
    """A chunks table as written before CJK support: no language/segmented columns, no embedder record."""
    fields = [f for f in chunk_schema(dimensions) if f.name not in (LANGUAGE, SEGMENTED)]
    row = {
        "chunk_id": "old:1:0",
        "doc_id": "old",
        "version": 1,
        "ordinal": 0,
        "text": "Carry 45 minutes of final reserve fuel on every IFR flight.",
        "title": "Fuel",
        "source": "fuel.md",
        "page": None,
        "page_end": None,
        "section": None,
        "groups": ["everyone"],
        "tags": [],
        "vector": np.resize(HashEmbedder().embed(["final reserve fuel"])[0], dimensions),
    }
    lancedb.connect(uri).create_table(TABLE, data=pa.Table.from_pylist([row], schema=pa.schema(fields)))


def test_an_index_from_before_cjk_support_opens_searches_and_takes_japanese_documents(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    settings.ensure_dirs()
    legacy_index(settings.index_uri, HashEmbedder.dimensions)
    kb = KnowledgeBase(settings, embedder=HashEmbedder())
    kb.catalog.add_user("frank", [])
    frank = kb.principal("frank")
    assert not kb.index.has_segmented_text
    assert kb.search(frank, "final reserve fuel", mode="text")[0].chunk_id == "old:1:0"
    assert kb.search(frank, "手荷物の料金", mode="text") == []  # CJK query on a table without the column

    kb.ingest_files(frank, [(FAQ.name, FAQ.read_bytes())], groups=["everyone"])
    assert kb.index.has_segmented_text  # added on the first write
    assert kb.search(frank, "final reserve fuel", mode="text")[0].chunk_id == "old:1:0"
    assert kb.search(frank, "final reserve fuel", mode="text")[0].language is None
    assert kb.search(frank, "受託手荷物の料金", mode="text")[0].source == FAQ.name


def test_the_index_records_its_embedder_and_refuses_another(tmp_path: Path) -> None:
    uri = str(tmp_path / "lancedb")
    index = ChunkIndex(uri, HashEmbedder.dimensions, embedder=HashEmbedder.name)
    assert index.built_with() == HashEmbedder.name
    assert ChunkIndex(uri, HashEmbedder.dimensions, embedder=HashEmbedder.name).built_with() == HashEmbedder.name
    with pytest.raises(EmbedderMismatchError) as error:
        ChunkIndex(uri, HashEmbedder.dimensions, embedder=RenamedHashEmbedder.name)
    assert "flywheel docs reindex" in str(error.value) and "hash-v2" in str(error.value)


def test_an_unrecorded_index_is_adopted_unless_the_embedder_is_newer_than_the_record(tmp_path: Path) -> None:
    legacy_index(str(tmp_path / "a"), 384)
    with pytest.raises(EmbedderMismatchError):
        ChunkIndex(str(tmp_path / "a"), 384, embedder="multilingual-e5-small")  # same size, other model
    assert ChunkIndex(str(tmp_path / "a"), 384, embedder="all-MiniLM-L6-v2").built_with() == "all-MiniLM-L6-v2"


def test_knowledge_base_search_embeds_queries_with_the_query_side_of_the_embedder(tmp_path: Path) -> None:
    class QueryAware(HashEmbedder):
        name = "query-aware"
        queries: ClassVar[list[str]] = []

        def embed_query(self, texts: list[str]) -> np.ndarray:
            self.queries += texts
            return self.embed(texts)

    embedder = QueryAware()
    kb = KnowledgeBase(load_settings(home=tmp_path / "home"), embedder=embedder)
    kb.catalog.add_user("frank", [])
    kb.ingest_files(kb.principal("frank"), [("oil.md", OIL)], groups=["everyone"])
    kb.search(kb.principal("frank"), "oil level", mode="vector")
    assert embedder.queries == ["oil level"]


class WideHashEmbedder(HashEmbedder):
    """Another embedder with another vector size."""

    name = "hash-wide"
    dimensions = 96


def test_reindex_re_embeds_every_chunk_and_the_new_embedder_opens_the_index(kb: KnowledgeBase) -> None:
    uri, before = kb.settings.index_uri, kb.index.count()
    result = reindex(uri, WideHashEmbedder())
    assert (result.chunks, result.previous_embedder, result.embedder) == (before, "hash", "hash-wide")
    moved = KnowledgeBase(kb.settings, embedder=WideHashEmbedder())
    assert moved.index.built_with() == "hash-wide" and moved.index.dimensions == 96
    hits = moved.search(moved.principal("frank"), "モバイルバッテリーは預けられますか", mode="hybrid", k=3)
    assert hits[0].source == FAQ.name and hits[0].language == "ja"
    assert all(h.source != BULLETIN.name for h in moved.search(moved.principal("frank"), "防水シーラント"))
    with pytest.raises(EmbedderMismatchError):
        ChunkIndex(uri, HashEmbedder.dimensions, embedder="hash")


def test_reindex_upgrades_an_index_from_before_cjk_support(tmp_path: Path) -> None:
    uri = str(tmp_path / "lancedb")
    legacy_index(uri, HashEmbedder.dimensions)
    assert reindex(uri, HashEmbedder()).chunks == 1
    index = ChunkIndex(uri, HashEmbedder.dimensions, embedder="hash")
    row = index.table.to_arrow().to_pylist()[0]
    assert (row[LANGUAGE], row[SEGMENTED], row["chunk_id"]) == ("und", None, "old:1:0")


def test_reindex_finishes_a_run_that_stopped_during_the_swap(kb: KnowledgeBase) -> None:
    uri, before = kb.settings.index_uri, kb.index.count()
    db = lancedb.connect(uri)
    data = db.open_table(TABLE).to_arrow()
    staging = db.create_table(STAGING, data=data, schema=data.schema)
    staging.update_field_metadata({"path": "vector", "metadata": {COMPLETE_TAG: "complete"}})
    db.drop_table(TABLE)
    assert reindex(uri, HashEmbedder()).chunks == before
    assert ChunkIndex(uri, HashEmbedder.dimensions, embedder="hash").count() == before
    assert STAGING not in lancedb.connect(uri).table_names()
