"""``flywheel mcp --as USER``: Flywheel's MCP server over stdio, for local MCP clients.

The same tools and resources as ``/mcp`` in ``flywheel serve``, every call as USER (groups read from
the catalog on each call). Over HTTP the API key decides the user instead. stdout carries the protocol
only: the SDK diverts stray output to stderr while it serves.
"""

from __future__ import annotations

import typer

from flywheel.cli.common import settings


def mcp(
    user: str = typer.Option(..., "--as", help="Every call runs as this user: only their groups' documents."),
    tracing: bool = typer.Option(True, "--tracing/--no-tracing", help="Record each question as an MLflow trace."),
) -> None:
    """Serve the MCP tools (search_documents, ask, classify_feedback, list_documents, registered tools)
    and documents as resources over stdio. Configure it in an MCP client as the command
    `flywheel mcp --as USER`."""
    import anyio

    from flywheel.access import Principal
    from flywheel.serve.app import build_service
    from flywheel.serve.deps import principal_for_user
    from flywheel.serve.mcp.server import build_mcp_server

    config = settings()
    service = build_service(config, tracing=tracing)
    service.knowledge.principal(user)  # an unknown user is a clear error before serving

    async def caller(_request: object) -> Principal:
        return await principal_for_user(service, user)

    server = build_mcp_server(service, caller)

    async def main() -> None:
        try:
            await server.run_stdio_async()
        finally:
            service.tracer.flush()

    anyio.run(main)
