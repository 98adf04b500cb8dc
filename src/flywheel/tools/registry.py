"""The tool registry: names, descriptions the agent reads, and who may use each tool.

A tool is a function ``(tool_input: str, context: ToolContext) -> ToolResult``. The context
carries the calling principal (per call, never global) and the services tools need (the
knowledge base, the maintenance database, the classifier). A tool may require groups; the agent
offers a principal only the tools they may use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flywheel.access import Principal

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


@dataclass(frozen=True)
class ToolContext:
    """What a tool call may use: who is calling, and shared services by name."""

    principal: Principal
    services: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> Any:
        if name not in self.services:
            raise LookupError(f"The tool needs the '{name}' service, which this agent was not given.")
        return self.services[name]


@dataclass(frozen=True)
class ToolResult:
    """Text for the LM, plus the sources it came from (rendered as citations)."""

    text: str
    sources: tuple[dict[str, Any], ...] = ()


ToolFunction = Callable[[str, ToolContext], ToolResult]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    func: ToolFunction
    required_groups: frozenset[str] = frozenset()  # any of these; empty = everyone
    examples: tuple[str, ...] = ()  # typical requests, used to rank tools for a question

    def profile(self) -> str:
        """Text that describes what the tool is for (name, description, examples), for ranking."""
        return " ".join([self.name.replace("_", " "), self.description, *self.examples])

    def allowed(self, principal: Principal) -> bool:
        return not self.required_groups or bool(principal.groups & self.required_groups)


class ToolRegistry:
    """An ordered set of tools; the agent's menu and tool descriptions come from here."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, new: Tool) -> Tool:
        if not _NAME.match(new.name):
            raise ValueError(f"Tool name {new.name!r} must be lowercase letters, digits and '_' (max 48).")
        if new.name in ("finish", "none"):
            raise ValueError(f"'{new.name}' is reserved for the agent's own decision.")
        if not new.description.strip():
            raise ValueError(f"Tool {new.name} needs a description: the agent chooses tools by reading them.")
        self._tools[new.name] = new
        return new

    def register(
        self,
        name: str | None = None,
        description: str | None = None,
        required_groups: Iterable[str] = (),
        examples: Iterable[str] = (),
    ) -> Callable[[ToolFunction], ToolFunction]:
        """Decorator: register a function as a tool (description defaults to its docstring)."""

        def decorate(func: ToolFunction) -> ToolFunction:
            self.add(
                Tool(
                    name or func.__name__,
                    (description or func.__doc__ or "").strip(),
                    func,
                    frozenset(required_groups),
                    tuple(examples),
                )
            )
            return func

        return decorate

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def for_principal(self, principal: Principal) -> list[Tool]:
        return [t for t in self._tools.values() if t.allowed(principal)]

    def copy(self) -> ToolRegistry:
        return ToolRegistry(self._tools.values())


default_registry = ToolRegistry()


def tool(
    name: str | None = None,
    description: str | None = None,
    required_groups: Iterable[str] = (),
    examples: Iterable[str] = (),
    registry: ToolRegistry | None = None,
) -> Callable[[ToolFunction], ToolFunction]:
    """Register a tool in the default registry (or the one given)."""
    return (registry or default_registry).register(name, description, required_groups, examples)
