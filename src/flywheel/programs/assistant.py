"""The assistant: builds the named program over the knowledge base and answers as a principal.

One object the CLI, the service and the MLflow model share: it resolves program names (``rag``,
``agent``, or custom ``package.module:Class`` entries from the config), keeps conversations, and
returns plain dictionaries (answer, citations, conversation id).
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any

import dspy

from flywheel.access import Principal
from flywheel.config import Settings
from flywheel.errors import ConfigError, NotFoundError

BUILTIN_PROGRAMS = ("rag", "agent")


def load_program_class(spec: str) -> type[dspy.Module]:
    """Import ``package.module:Class`` and check that it is a dspy.Module."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"Program {spec!r} is not of the form 'package.module:Class'.",
                          hint="Example: programs.custom = {mybot = 'mypkg.bots:MyBot'}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"Cannot import program {spec!r}: {exc}",
                          hint="Install the package that defines it, or fix the name in the config.") from exc
    if not (inspect.isclass(obj) and issubclass(obj, dspy.Module)):
        raise ConfigError(f"{spec!r} is not a dspy.Module subclass.", hint="Point at a dspy.Module class.")
    return obj


class Assistant:
    """Programs by name over shared services; every call carries its principal."""

    def __init__(self, settings: Settings, *, knowledge: Any = None, services: dict[str, Any] | None = None) -> None:
        from flywheel.programs.conversations import ConversationStore

        self.settings = settings
        if knowledge is None:
            from flywheel.knowledge.base import KnowledgeBase

            knowledge = KnowledgeBase(settings)
        self.knowledge = knowledge
        self.services: dict[str, Any] = {"knowledge": knowledge, **(services or {})}
        if "maintenance" not in self.services and settings.maintenance_db.is_file():
            from flywheel.tools.maintenance import MaintenanceRecords

            self.services["maintenance"] = MaintenanceRecords(settings.maintenance_db)
        self.conversations = ConversationStore(settings.catalog_url)
        self._programs: dict[str, dspy.Module] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return [*BUILTIN_PROGRAMS, *self.settings.programs.custom]

    def program(self, name: str | None = None) -> dspy.Module:
        name = name or self.settings.programs.default
        with self._lock:
            if name not in self._programs:
                self._programs[name] = self._build(name)
            return self._programs[name]

    def set_program(self, name: str, program: dspy.Module) -> None:
        """Install a program object (e.g. an optimized one loaded from a state file)."""
        with self._lock:
            self._programs[name] = program

    def _build(self, name: str) -> dspy.Module:
        if name == "rag":
            from flywheel.programs.rag import RAGChatbot, knowledge_retriever

            return RAGChatbot(knowledge_retriever(self.knowledge), k=self.settings.programs.retrieval_k)
        if name == "agent":
            from flywheel.programs.agent import ToolAgent
            from flywheel.tools.builtin import default_tools

            return ToolAgent(default_tools(), self.services, max_steps=self.settings.programs.agent_max_steps)
        spec = self.settings.programs.custom.get(name)
        if spec is None:
            raise NotFoundError(f"Unknown program {name!r}.", hint=f"Known programs: {', '.join(self.names())}.")
        cls = load_program_class(spec)
        accepts_services = "services" in inspect.signature(cls.__init__).parameters
        return cls(services=self.services) if accepts_services else cls()

    def ask(self, question: str, principal: Principal, *, program: str | None = None,
            conversation_id: str | None = None) -> dict[str, Any]:
        """Answer one question; with a conversation id, use and extend its history."""
        from flywheel.errors import InvalidInputError

        if not question or not question.strip():
            raise InvalidInputError("The question is empty.", hint="Ask something.")
        history = self.conversations.history(principal, conversation_id) if conversation_id else []
        conversation_id = conversation_id or self.conversations.start(principal)
        result = self.program(program)(question=question, principal=principal, history=history)
        citations = list(getattr(result, "citations", []) or [])
        self.conversations.append(principal, conversation_id, question, result.answer, citations)
        return {
            "answer": result.answer,
            "citations": citations,
            "passages": list(getattr(result, "passages", []) or []),
            "steps": list(getattr(result, "steps", []) or []),
            "conversation_id": conversation_id,
            "program": program or self.settings.programs.default,
        }
