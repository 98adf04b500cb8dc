"""The MCP endpoint of ``flywheel serve`` (/mcp), driven by the official SDK's own client over HTTP.

The service runs under uvicorn on loopback with the hashing embedder and a DummyLM. alice is in
mechanics (oil.md), bob in pilots (fuel.md): every tool, resource and listing answers as the key's
user, a missing or revoked key gets no MCP answer at all, and groups changed in the catalog apply to
the next call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.unit.serve_helpers import make_env, make_settings, serving


@dataclass
class Served:
    url: str
    keys: dict[str, str]
    kb: Any
    app: Any


@pytest.fixture
def served() -> Iterator[Served]:
    # These tests check tools and access, not timeouts: the helpers' 1 s request limit made a search on
    # a busy 2-core CI machine fail once ("did not finish within 1 s").
    app, _settings, kb, keys = make_env(make_settings(serve={"request_timeout_s": 10}))
    with serving(app) as url:
        yield Served(url, keys, kb, app)


def session(served: Served, key: str | None, **options: Any) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = streamable_http_client(f"{served.url}/mcp", http_client=httpx2.AsyncClient(headers=headers))
    return Client(transport, **options)


def run(func: Any) -> Any:
    return anyio.run(func)


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_tools_resources_and_acl_as_the_keys_user(served: Served, mode: str) -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with session(served, served.keys["alice"], mode=mode) as client:
            out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
            out["search"] = structured(await client.call_tool("search_documents", {"query": "reserve fuel oil"}))
            out["docs"] = structured(await client.call_tool("list_documents", {}))
            out["resources"] = (await client.list_resources()).resources
            out["oil"] = await client.read_resource(out["resources"][0].uri)
            fuel_id = next(d.id for d in served.kb.catalog.list_documents() if d.source == "fuel.md")
            try:
                await client.read_resource(f"flywheel://documents/{fuel_id}")
                out["fuel"] = "read"
            except Exception as exc:
                out["fuel"] = str(exc)
            out["ask"] = structured(await client.call_tool("ask", {"question": "When do I check the oil?"}))
        return out

    out = run(main)
    expected = {"search_documents", "ask", "classify_feedback", "list_documents", "maintenance_records"}
    assert expected <= set(out["tools"])
    sources = {p["citation"].split()[0] for p in out["search"]["passages"]}
    assert sources == {"oil.md"}  # bob's fuel.md is never searched for alice
    assert [d["source"] for d in out["docs"]["documents"]] == ["oil.md"]
    assert [r.name for r in out["resources"]] == ["oil.md"]
    assert "engine oil level" in out["oil"].contents[0].text
    assert "No document" in out["fuel"]
    assert out["ask"]["answer"] == "Check it 5 to 30 minutes after shutdown."
    assert out["ask"]["trace_id"] and out["ask"]["program"] == "rag"
    # the answer was recorded for alice: feedback attaches to it like any other answer
    assert served.app.state.flywheel.feedback.interaction(out["ask"]["trace_id"], "alice")["question"]


def test_group_tools_are_refused_outside_their_groups(served: Served) -> None:
    async def main() -> Any:
        async with session(served, served.keys["bob"]) as client:
            return await client.call_tool("classify_feedback", {"text": "My bag never arrived"})

    result = run(main)
    assert result.is_error
    assert "may not classify feedback" in result.content[0].text and "customer-support" in result.content[0].text


def test_tool_errors_say_how_to_fix(served: Served) -> None:
    async def main() -> list[Any]:
        async with session(served, served.keys["alice"]) as client:
            return [
                await client.call_tool("ask", {"question": "hi", "program": "nope"}),
                await client.call_tool("ask", {"question": "   "}),
                await client.call_tool("search_documents", {"query": "oil", "k": 500}),
            ]

    unknown, empty, too_many = run(main)
    assert all(r.is_error for r in (unknown, empty, too_many))
    assert "Unknown program 'nope'" in unknown.content[0].text and "Known programs" in unknown.content[0].text
    assert "The question is empty" in empty.content[0].text
    assert "k must be between 1 and 20" in too_many.content[0].text


def test_missing_unknown_and_revoked_keys_are_refused(served: Served) -> None:
    for key in (None, "fw_not-a-key"):
        response = httpx.post(
            f"{served.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {key}"} if key else {},
        )
        assert response.status_code == 401
        assert response.json()["error"]["error"] == "AuthenticationError"
        assert "hint" in response.json()["error"]
    store = served.app.state.flywheel.keys
    store.revoke(store.list("bob")[0]["id"])

    async def main() -> None:
        async with session(served, served.keys["bob"]) as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017  (the SDK raises its transport's error for the 401)
        run(main)


def test_group_changes_apply_to_the_next_call(served: Served) -> None:
    async def search() -> list[str]:
        async with session(served, served.keys["bob"]) as client:
            found = structured(await client.call_tool("search_documents", {"query": "engine oil level", "k": 5}))
            return sorted({p["citation"].split()[0] for p in found["passages"]})

    assert run(search) == ["fuel.md"]
    served.kb.catalog.add_user("bob", ["pilots", "mechanics"])
    assert run(search) == ["fuel.md", "oil.md"]


def test_a_session_opened_with_one_users_key_is_not_found_with_anothers(served: Served) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
    }
    alice, bob = ({"Authorization": f"Bearer {served.keys[user]}"} for user in ("alice", "bob"))
    with httpx.Client(base_url=served.url, timeout=10) as http:
        opened = http.post("/mcp", json=initialize, headers={**headers, **alice})
        assert opened.status_code == 200
        same = {**headers, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers={**same, **alice})
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        assert http.post("/mcp", json=listing, headers={**same, **alice}).status_code == 200
        assert http.post("/mcp", json=listing, headers={**same, **bob}).status_code == 404
