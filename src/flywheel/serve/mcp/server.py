"""The MCP tools and resources, built over a :class:`~flywheel.serve.runtime.Service`.

Tools: ``search_documents``, ``ask`` (any served question-answering program: rag, agent, custom),
``classify_feedback``, ``list_documents``, and every tool registered with ``@flywheel.tools.tool``
(plus the built-in ``maintenance_records``) under its own name with one ``input`` string. Resources:
``flywheel://documents/{doc_id}`` (a document's text, in reading order); ``resources/list`` lists the
documents the caller may read.

Each call first resolves its principal (``Caller``: the API key's user over HTTP, the ``--as`` user on
stdio), reading the user's groups from the catalog *now*, then runs through the service's own paths:
retrieval with the ACL inside the query, ``Service.answer`` for questions (traced, recorded, so the
returned ``trace_id`` takes feedback), tool group requirements as in the agent. Work runs in the
service's worker threads under its request timeout. A Flywheel error becomes a tool error whose text
says how to fix it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import ListResourcesResult, Resource
from pydantic import BaseModel, Field

from flywheel.access import Principal
from flywheel.answers import Answer as ProgramAnswer
from flywheel.assistant.builtin_tools import default_tools
from flywheel.errors import AccessDeniedError, FlywheelError, InvalidInputError
from flywheel.programs.kinds import ProgramKind
from flywheel.serve.runtime import Service
from flywheel.tools.registry import ToolContext

T = TypeVar("T")
DOCUMENT_URI = "flywheel://documents/{doc_id}"
MAX_K = 20
INSTRUCTIONS = (
    "Flywheel answers questions over a company's own documents with citations, as the signed-in user: "
    "only documents shared with the user's groups are ever searched or read. Use search_documents for "
    "passages, ask for a cited answer (program 'rag' or 'agent'), list_documents for what exists."
)


class Caller(Protocol):
    """Who a call runs as: resolves the principal of the request being served (None on stdio)."""

    def __call__(self, request: Any) -> Awaitable[Principal]: ...


class Passage(BaseModel):
    citation: str = Field(description="Where the passage comes from: file, page, section.")
    doc_id: str
    chunk_id: str
    text: str
    score: float


class SearchResult(BaseModel):
    passages: list[Passage]


class Turn(BaseModel):
    question: str
    answer: str


class Answer(BaseModel):
    answer: str
    citations: list[dict[str, Any]] = Field(description="The passages or records the answer cites.")
    trace_id: str = Field(description="Give feedback on this answer with POST /feedback {trace_id, rating}.")
    program: str


class Classification(BaseModel):
    sentiment: str
    reason: str | None = None
    justification: str = ""


class DocumentInfo(BaseModel):
    id: str
    uri: str = Field(description="Read the text with resources/read on this URI.")
    title: str
    source: str
    groups: list[str]
    owner: str
    status: str
    chunks: int


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


class ToolOutput(BaseModel):
    text: str
    sources: list[dict[str, Any]]


def document_uri(doc_id: str) -> str:
    return DOCUMENT_URI.format(doc_id=doc_id)


def build_mcp_server(service: Service, caller: Caller) -> MCPServer:
    """The Flywheel MCP server over ``service``; ``caller`` decides who each call runs as."""
    # Lazy (start-up time): only this path needs FastAPI routes.
    from flywheel.serve.routes.documents import document_dict

    async def run_as(ctx: Context, work: Callable[[Principal], T]) -> T:
        try:
            principal = await caller(ctx.request_context.request)
            return await service.run(work, principal)
        except FlywheelError as exc:
            raise ToolError(str(exc).replace("\n ", "")) from exc

    server: MCPServer = MCPServer(
        "flywheel",
        title="Flywheel",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level=service.settings.log_level,  # the SDK calls logging.basicConfig
        middleware=[_readable_documents(service, caller)],
    )
    tools = default_tools()

    @server.tool(
        description="Search the documents you may read (hybrid vector + keyword search). "
        "Returns the k best passages with citations."
    )
    async def search_documents(query: str, ctx: Context, k: int = 5) -> SearchResult:
        if not 1 <= k <= MAX_K:
            raise ToolError(f"k must be between 1 and {MAX_K}.")

        def work(principal: Principal) -> SearchResult:
            hits = service.knowledge.search(principal, query, k=k)
            return SearchResult(
                passages=[
                    Passage(
                        citation=h.citation(),
                        doc_id=h.doc_id,
                        chunk_id=h.chunk_id,
                        text=h.text,
                        score=round(h.score, 4),
                    )
                    for h in hits
                ]
            )

        return await run_as(ctx, work)

    answering = [n for n in service.program_names() if ProgramKind.of(n) == ProgramKind.QA]

    @server.tool(
        description="Ask a question and get a cited answer from your documents. program: "
        f"{', '.join(answering)} (default {service.settings.programs.default}); "
        "history: earlier turns of the conversation, oldest first."
    )
    async def ask(question: str, ctx: Context, program: str | None = None, history: list[Turn] | None = None) -> Answer:
        def work(principal: Principal) -> ProgramAnswer:
            name = service.resolve_model(program)
            if ProgramKind.of(name) == ProgramKind.CLASSIFIER:
                raise InvalidInputError("The classifier does not answer questions.", hint="Use classify_feedback.")
            return service.answer(principal, name, question, [t.model_dump() for t in history or []])

        reply = await run_as(ctx, work)
        return Answer(
            answer=reply.answer, citations=reply.citations, trace_id=reply.trace_id or "", program=reply.program or ""
        )

    gate = tools.get("classify_feedback")

    @server.tool(
        description="Classify a piece of customer feedback: sentiment, the reason for negative "
        "feedback, and a one-sentence justification (the served classifier)."
    )
    async def classify_feedback(text: str, ctx: Context) -> Classification:
        def work(principal: Principal) -> Classification:
            if gate is not None and not gate.allowed(principal):
                raise AccessDeniedError(
                    f"{principal.user} may not classify feedback.",
                    hint=f"Ask an admin to add you to {' or '.join(sorted(gate.required_groups))}.",
                )
            with service.lm_context():
                label = service.assistant.program("classifier")(text=text)
            return Classification(
                sentiment=str(label.sentiment),
                reason=getattr(label, "reason", None),
                justification=str(getattr(label, "justification", "") or ""),
            )

        return await run_as(ctx, work)

    @server.tool(
        description="The documents you may read (admins: every document's metadata), with their resource URIs."
    )
    async def list_documents(ctx: Context) -> DocumentList:
        def work(principal: Principal) -> DocumentList:
            docs = [document_dict(d) for d in service.knowledge.list_documents(principal)]
            return DocumentList(
                documents=[
                    DocumentInfo(
                        uri=document_uri(d["id"]),
                        **{key: d[key] for key in ("id", "title", "source", "groups", "owner", "status", "chunks")},
                    )
                    for d in docs
                ]
            )

        return await run_as(ctx, work)

    for tool in (tools.get(name) for name in tools.names()):
        if tool is not None and tool.name not in ("search_documents", "classify_feedback"):  # richer versions above
            server.add_tool(_registered_tool(tool, service, run_as), name=tool.name, description=tool.description)

    @server.resource(
        DOCUMENT_URI,
        name="document",
        mime_type="text/markdown",
        description="A document you may read, as text in reading order with its citations.",
    )
    async def read_document(doc_id: str, ctx: Context) -> str:
        def work(principal: Principal) -> str:
            doc, chunks = service.knowledge.document_text(principal, doc_id)
            parts = [f"# {doc.title or doc.source}", ""]
            for chunk in chunks:
                parts += [f"[{chunk.citation()}]", chunk.text, ""]
            return "\n".join(parts)

        try:
            return await run_as(ctx, work)
        except ToolError as exc:  # resources report errors as resource errors
            raise ResourceNotFoundError(str(exc)) from exc

    return server


def _registered_tool(tool: Any, service: Service, run_as: Any) -> Callable[..., Awaitable[ToolOutput]]:
    """An MCP tool with one ``input`` string that calls a registered agent tool as the caller."""

    async def call(input: str, ctx: Context) -> ToolOutput:
        def work(principal: Principal) -> ToolOutput:
            if not tool.allowed(principal):
                groups = ", ".join(sorted(tool.required_groups))
                raise AccessDeniedError(
                    f"{principal.user} may not use {tool.name}.",
                    hint=f"It needs one of the groups {groups}: ask an admin.",
                )
            if not input or not input.strip():
                raise InvalidInputError(f"{tool.name} needs an input.", hint=tool.description)
            result = tool.func(input, ToolContext(principal, service.assistant.services))
            return ToolOutput(text=result.text, sources=[dict(s) for s in result.sources])

        return await run_as(ctx, work)

    return call


def _readable_documents(service: Service, caller: Caller) -> Any:
    """Middleware answering ``resources/list`` with the caller's readable documents (the ACL decides)."""

    async def middleware(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if ctx.method != "resources/list":
            return await call_next(ctx)
        principal = await caller(ctx.request)

        def work(principal: Principal) -> list[Resource]:
            return [
                Resource(
                    uri=document_uri(d.id),
                    name=d.source,
                    title=d.title or d.source,
                    mime_type="text/markdown",
                    description=f"Shared with {', '.join(sorted(d.groups))}.",
                )
                for d in service.knowledge.list_documents(principal)
                if principal.can_read(d.groups)
            ]

        return ListResourcesResult(resources=await service.run(work, principal))

    return middleware


def _version() -> str:
    try:
        return version("flywheel")
    except PackageNotFoundError:
        return "0"
