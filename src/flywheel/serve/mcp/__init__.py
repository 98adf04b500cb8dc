"""Flywheel as an MCP server (the official ``mcp`` SDK): tools and documents for MCP clients.

``server`` builds the tools and resources over a running :class:`~flywheel.serve.runtime.Service`;
``http`` mounts them in ``flywheel serve`` at ``/mcp`` (streamable HTTP, API-key auth); ``flywheel
mcp --as USER`` serves them over stdio. Every call runs as one principal, through the same ACL as
every other interface.
"""
