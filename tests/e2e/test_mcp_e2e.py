"""MCP end to end with the SDK's own client: the sample knowledge base (real embedder, LanceDB, catalog).

Over HTTP (``/mcp`` in the served app, each user's API key): for every sample user and every canary,
the canary's fact, token and paraphrases are searched through the MCP ``search_documents`` tool; an
outsider never gets a passage of the canary's document (nor its token), and cannot list or read it as
a resource; an insider finds it. Over stdio: ``flywheel mcp --as USER`` as a subprocess, answering
with a stub LM endpoint (bench/stub_lm.py), with the same ACL.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import dspy
import httpx2
import pytest
from dspy.utils import DummyLM
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from flywheel.assistant import Assistant
from flywheel.knowledge.base import KnowledgeBase
from flywheel.serve.app import create_app
from tests.unit.serve_helpers import serving, stub_lm_base

from .test_knowledge_acl import canary_queries, doc_id_of, load_yaml

ANSWER = {"reasoning": "r", "answer": "See the passages.", "citations": [1], "found": True}


@pytest.fixture(scope="module")
def served(sample_knowledge: KnowledgeBase) -> Iterator[tuple[str, dict[str, str]]]:
    settings = sample_knowledge.settings
    lm = DummyLM([ANSWER] * 50, adapter=dspy.JSONAdapter())
    app = create_app(settings, assistant=Assistant(settings, knowledge=sample_knowledge), lm=lm, tracing=False)
    users = [u["name"] for u in load_yaml("users.yaml")["users"]]
    keys = {user: app.state.flywheel.keys.create(user)[1] for user in users}
    with serving(app) as url:
        yield f"{url}/mcp", keys


def passages(result: Any) -> list[dict[str, Any]]:
    assert not result.is_error, result.content
    return (result.structured_content or json.loads(result.content[0].text))["passages"]


def test_no_canary_reaches_an_outsider_over_mcp(
    served: tuple[str, dict[str, str]], sample_knowledge: KnowledgeBase
) -> None:
    url, keys = served
    canaries = [{**c, "doc_id": doc_id_of(sample_knowledge, c["document"])} for c in load_yaml("canaries.yaml")]

    async def sweep(user: str) -> tuple[int, int]:
        principal = sample_knowledge.principal(user)
        calls = found = 0
        client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys[user]}"})
        async with Client(streamable_http_client(url, http_client=client)) as mcp:
            listed = {r.uri for r in (await mcp.list_resources()).resources}
            for canary in canaries:
                uri = f"flywheel://documents/{canary['doc_id']}"
                insider = principal.can_read(canary["groups"])
                seen = False
                for query in canary_queries(canary):
                    hits = passages(await mcp.call_tool("search_documents", {"query": query, "k": 10}))
                    calls += 1
                    if not insider:
                        assert all(h["doc_id"] != canary["doc_id"] for h in hits), f"{user} saw {canary['id']}"
                        assert all(canary["token"] not in h["text"] for h in hits), f"{user} saw {canary['token']}"
                    seen = seen or any(h["doc_id"] == canary["doc_id"] for h in hits)
                assert (uri in listed) == insider
                if insider:
                    assert seen, f"{user} may read canary {canary['id']} but never found it"
                    assert canary["token"] in (await mcp.read_resource(uri)).contents[0].text
                    found += 1
                else:
                    with pytest.raises(Exception, match="No document"):
                        await mcp.read_resource(uri)
        return calls, found

    total_calls = total_found = 0
    for user in keys:
        calls, found = anyio.run(sweep, user)
        total_calls, total_found = total_calls + calls, total_found + found
    assert total_calls >= 300 and total_found > 0


@pytest.fixture(scope="module")
def stub_lm() -> str:
    return stub_lm_base()


def test_stdio_server_as_a_user(sample_knowledge: KnowledgeBase, stub_lm: str) -> None:
    canaries = load_yaml("canaries.yaml")
    outsider = next(
        u["name"]
        for u in load_yaml("users.yaml")["users"]
        if not any(sample_knowledge.principal(u["name"]).can_read(c["groups"]) for c in canaries[:1])
    )
    canary = canaries[0]
    env = {
        "FLYWHEEL_HOME": str(sample_knowledge.settings.home),
        "FLYWHEEL_LM__PROVIDER": "openai",
        "FLYWHEEL_LM__API_BASE": stub_lm,
        "FLYWHEEL_LM__MODEL": "stub",
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "FLYWHEEL_LM__N_THREADS": "1",
    }
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "flywheel"),
        args=["mcp", "--as", outsider, "--no-tracing"],
        env=env,
        cwd=os.getcwd(),
    )

    async def main() -> dict[str, Any]:
        async with Client(params) as mcp:
            return {
                "tools": {t.name for t in (await mcp.list_tools()).tools},
                "hits": passages(await mcp.call_tool("search_documents", {"query": canary["fact"], "k": 10})),
                "docs": (await mcp.call_tool("list_documents", {})).structured_content["documents"],
                "ask": (await mcp.call_tool("ask", {"question": canary["fact"]})).structured_content,
            }

    out = anyio.run(main)
    assert {"search_documents", "ask", "classify_feedback", "list_documents"} <= out["tools"]
    canary_doc = doc_id_of(sample_knowledge, canary["document"])
    assert out["hits"] and all(h["doc_id"] != canary_doc and canary["token"] not in h["text"] for h in out["hits"])
    assert canary_doc not in {d["id"] for d in out["docs"]}
    assert out["ask"]["answer"] and out["ask"]["trace_id"]
    assert all(c.get("doc_id") != canary_doc for c in out["ask"]["citations"])
