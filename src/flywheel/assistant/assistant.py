"""The assistant: builds the named program over the knowledge base and answers as a principal.

One object the CLI, the service and the MLflow model share: it resolves program names (``rag``,
``agent``, or custom ``package.module:Class`` entries from the config), keeps conversations, and
returns plain dictionaries (answer, citations, conversation id).
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any, Protocol

import dspy

from flywheel.access import Principal
from flywheel.answers import Answer
from flywheel.assistant.builtin_tools import default_tools
from flywheel.config import Settings
from flywheel.errors import ConfigError, InvalidInputError, NotFoundError
from flywheel.knowledge.base import KnowledgeBase
from flywheel.knowledge.index import Hit
from flywheel.programs.agent import ToolAgent
from flywheel.programs.classify import FeedbackClassifier, LabelSet, load_labels
from flywheel.programs.rag import default_config, knowledge_readable, rag_program
from flywheel.stores.conversations import ConversationStore
from flywheel.tools.maintenance import MaintenanceRecords

BUILTIN_PROGRAMS = ("rag", "agent", "classifier")


def load_program_class(spec: str) -> type[dspy.Module]:
    """Import ``package.module:Class`` and check that it is a dspy.Module."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"Program {spec!r} is not of the form 'package.module:Class'.",
            hint="Example: programs.custom = {mybot = 'mypkg.bots:MyBot'}",
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"Cannot import program {spec!r}: {exc}",
            hint="Install the package that defines it, or fix the name in the config.",
        ) from exc
    if not (inspect.isclass(obj) and issubclass(obj, dspy.Module)):
        raise ConfigError(f"{spec!r} is not a dspy.Module subclass.", hint="Point at a dspy.Module class.")
    return obj


class RegisteredVersion(Protocol):
    """A registered program version (:class:`flywheel.registry.programs.ProgramVersion`)."""

    @property
    def version(self) -> int: ...


class ProgramVersions(Protocol):
    """What the assistant needs of a program registry (:class:`flywheel.registry.programs.ProgramRegistry`):
    the version an alias points at, and that version's saved program state."""

    def get(self, name: str, ref: str | int = ...) -> RegisteredVersion | None: ...

    def load_state(self, name: str, ref: str | int = ...) -> tuple[RegisteredVersion, dict[str, Any]] | None: ...


class KnowledgeSource(Protocol):
    """What programs and interfaces need of the knowledge base (:class:`KnowledgeBase`): the caller's
    principal, and retrieval under that principal's ACL."""

    def principal(self, user: str) -> Principal: ...

    def search(self, principal: Principal, query: str, *, k: int = ...) -> list[Hit]: ...


class NoKnowledge:
    """Stands in for the knowledge base where a program reads no documents (the classifier): spares
    opening the index (every Spark worker loading a classifier model did, for nothing)."""

    catalog = None


class Assistant:
    """Programs by name over shared services; every call carries its principal."""

    def __init__(
        self,
        settings: Settings,
        *,
        knowledge: KnowledgeSource | NoKnowledge | None = None,
        services: dict[str, Any] | None = None,
        registry: ProgramVersions | None = None,
        alias: str = "champion",
        labels: dict[str, Any] | None = None,
    ) -> None:
        """``registry`` (a ProgramRegistry, or any object with ``load_state(name, alias)``) makes every
        program start from its registered ``alias`` version; ``labels`` overrides the classifier's label set."""
        self.settings = settings
        self.registry = registry
        self.alias = alias
        self.labels = labels
        self.loaded_versions: dict[str, int | None] = {}
        if knowledge is None:
            knowledge = KnowledgeBase(settings)
        self.knowledge = knowledge
        self.services: dict[str, Any] = {"knowledge": knowledge, **(services or {})}
        if "maintenance" not in self.services and settings.maintenance_db.is_file():
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
                program = self._build(name)
                self.loaded_versions[name] = self._apply_registered_state(name, program)
                self._programs[name] = program
            return self._programs[name]

    def current(self, name: str | None = None) -> tuple[dspy.Module, int | None]:
        """The program a call should use and its registered version, read together (a swap between
        the two reads would otherwise label an answer with the wrong version)."""
        name = name or self.settings.programs.default
        program = self.program(name)
        with self._lock:
            return self._programs.get(name, program), self.loaded_versions.get(name)

    def _apply_registered_state(self, name: str, program: dspy.Module) -> int | None:
        """Load the registry's ``alias`` version into ``program``; its version number, or None."""
        if self.registry is None:
            return None
        found = self.registry.load_state(name, self.alias)
        if found is None:
            return None
        version, state = found
        program.load_state(state)
        return version.version

    def refresh(self) -> list[str]:
        """Swap in programs whose registered ``alias`` moved (e.g. a new champion). In-flight calls
        keep the object they started with; the next call gets the new one."""
        if self.registry is None:
            return []
        changed = []
        for name in list(self._programs):
            current = self.registry.get(name, self.alias)
            number = current.version if current is not None else None
            if number != self.loaded_versions.get(name):
                program = self._build(name)
                loaded = self._apply_registered_state(name, program)
                with self._lock:
                    self._programs[name] = program
                    self.loaded_versions[name] = loaded
                changed.append(name)
        return changed

    def set_program(self, name: str, program: dspy.Module) -> None:
        """Install a program object (e.g. an optimized one loaded from a state file)."""
        with self._lock:
            self._programs[name] = program

    def _build(self, name: str) -> dspy.Module:
        if name == "rag":
            return rag_program(self.knowledge, self.settings)
        if name == "agent":
            return ToolAgent(
                default_tools(),
                self.services,
                max_steps=self.settings.programs.agent_max_steps,
                reasoning=default_config(self.settings).reasoning,
                readable=knowledge_readable(self.knowledge),
            )
        if name == "classifier":
            if self.labels is not None:
                return FeedbackClassifier(LabelSet.parse(self.labels, "the registered label set"))
            return FeedbackClassifier(load_labels(self.settings.classify.labels))
        spec = self.settings.programs.custom.get(name)
        if spec is None:
            raise NotFoundError(f"Unknown program {name!r}.", hint=f"Known programs: {', '.join(self.names())}.")
        cls = load_program_class(spec)
        accepts_services = "services" in inspect.signature(cls.__init__).parameters
        return cls(services=self.services) if accepts_services else cls()

    def ask(
        self,
        question: str,
        principal: Principal,
        *,
        program: str | None = None,
        conversation_id: str | None = None,
        history: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """:meth:`answer` as a plain dictionary (answer, citations, passages, steps, conversation_id, program)."""
        return self.answer(
            question, principal, program=program, conversation_id=conversation_id, history=history
        ).as_dict("answer", "citations", "passages", "steps", "conversation_id", "program")

    def answer(
        self,
        question: str,
        principal: Principal,
        *,
        program: str | None = None,
        conversation_id: str | None = None,
        history: list[dict[str, str]] | None = None,
    ) -> Answer:
        """Answer one question; with a conversation id, use and extend its history (or use the
        ``history`` given, e.g. from OpenAI-style messages)."""
        if not question or not question.strip():
            raise InvalidInputError("The question is empty.", hint="Ask something.")
        if history is None:
            history = self.conversations.history(principal, conversation_id) if conversation_id else []
        conversation_id = conversation_id or self.conversations.start(principal)
        name = program or self.settings.programs.default
        module, version = self.current(name)  # read together: a swap between them would mislabel the answer
        prediction = module(question=question, principal=principal, history=history)
        answer = Answer.from_prediction(
            prediction, program=name, program_version=version, conversation_id=conversation_id
        )
        self.conversations.append(principal, conversation_id, question, answer.answer, answer.citations)
        return answer
