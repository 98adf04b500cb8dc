"""Tools the agent can call. Register your own with the ``@tool`` decorator."""

from flywheel.tools.registry import Tool, ToolContext, ToolRegistry, ToolResult, default_registry, tool

__all__ = ["Tool", "ToolContext", "ToolRegistry", "ToolResult", "default_registry", "tool"]
