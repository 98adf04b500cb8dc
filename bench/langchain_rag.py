"""The LangChain build of Flywheel's RAG chatbot, for the side-by-side benchmarks (bench-only).

Built the way a LangChain user would build it, with the same parts as Flywheel's unoptimized
``RAGChatbot`` (first turn, which is what the benchmarks send):

- **retrieval**: a LangChain ``BaseRetriever`` over the *same* LanceDB table (``chunks``) with the
  *same* ACL predicate inside the query (``AclFilter``), doing the same hybrid (vector + BM25, score
  fusion) query through ``ChunkIndex.search``, ``k`` = 4. The query is embedded the way a LangChain
  user embeds with these weights: ``HuggingFaceEmbeddings`` (sentence-transformers on torch) over the
  same packaged MiniLM, whose vectors equal Flywheel's to ~1e-7 (Flywheel runs them on ONNX Runtime
  and encodes concurrent queries together; until 2026-12-07 this chain borrowed Flywheel's embedder,
  and with it both). Retrieved passages are thus the same: quality and overhead differences come
  from the rest;
- **prompt**: a ``ChatPromptTemplate`` holding the exact system and user messages DSPy's
  ``JSONAdapter`` sends for Flywheel's answer step, with or without its reasoning field as
  Flywheel's default design has it for the configured LM (``Settings.reasons_by_default``: on
  for an endpoint LM, off for the embedded one); exported by ``python -m bench.langchain_rag export-prompt``
  into ``bench/langchain_prompt.json`` and ``bench/langchain_prompt_reasoning.json`` (the serving
  process does not import DSPy);
- **LM**: ``langchain_openai.ChatOpenAI`` against the same OpenAI-compatible endpoint, with
  ``with_structured_output(..., method="json_schema")`` so the endpoint enforces the same JSON schema;
- **chain**: LCEL — retrieve → (no passages: the not-found answer, no LM call) → prompt → LM →
  citations mapped back to passages, as Flywheel does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough
from pydantic import BaseModel, ConfigDict

from flywheel.access import Principal

PROMPT_FILE = Path(__file__).with_name("langchain_prompt.json")
REASONING_PROMPT_FILE = Path(__file__).with_name("langchain_prompt_reasoning.json")
NOT_FOUND = "I could not find the answer in the documents available to you."
_SENTINELS = {"passages": "@@PASSAGES@@", "question": "@@QUESTION@@"}


# The answer object: the fields and order of Flywheel's ChainOfThought(AnswerFromPassages). No
# docstring or field descriptions, so that its JSON schema is the one DSPy sends (but for the name).
class RAGAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str
    citations: list[int]


class RAGReasonedAnswer(BaseModel):  # ChainOfThought's fields: reasoning first
    model_config = ConfigDict(extra="forbid")

    reasoning: str
    answer: str
    citations: list[int]


def prompt_file(reasoning: bool) -> Path:
    return REASONING_PROMPT_FILE if reasoning else PROMPT_FILE


class LanceDBRetriever(BaseRetriever):
    """Hybrid search over the Flywheel LanceDB table, restricted to the caller's groups inside the query."""

    index: Any  # flywheel.knowledge.index.ChunkIndex (the same table Flywheel reads)
    embedder: Any  # a LangChain Embeddings over the same MiniLM weights
    k: int = 4

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, principal: Principal | None = None
    ) -> list[Document]:
        if principal is None:
            raise ValueError("LanceDBRetriever needs principal=... (the ACL is part of every query)")
        vector = self.embedder.embed_query(query)
        hits = self.index.search(principal, vector=vector, text=query, k=self.k, mode="hybrid")
        return [
            Document(
                page_content=h.text,
                metadata={"chunk_id": h.chunk_id, "doc_id": h.doc_id, "citation": h.citation(), "source": h.source},
            )
            for h in hits
        ]


def export_prompts() -> list[Path]:
    """Both templates: the answer step without and with its reasoning field."""
    return [export_prompt(reasoning) for reasoning in (False, True)]


def export_prompt(reasoning: bool = False, path: Path | None = None) -> Path:
    """Write the messages DSPy's JSONAdapter sends for Flywheel's answer step, as a template."""
    import dspy

    from flywheel.programs.rag import RAGChatbot, RAGConfig

    path = path or prompt_file(reasoning)
    signature = RAGChatbot(config=RAGConfig(reasoning=reasoning)).answer_predictor(yes_no=False).signature
    inputs = {
        "passages": _SENTINELS["passages"],
        "history": dspy.History(messages=[]),
        "question": _SENTINELS["question"],
    }
    messages = dspy.JSONAdapter().format(signature, demos=[], inputs=inputs)
    template = []
    for message in messages:
        text = message["content"].replace("{", "{{").replace("}", "}}")
        for name, sentinel in _SENTINELS.items():
            text = text.replace(sentinel, "{" + name + "}")
        template.append([message["role"], text])
    path.write_text(json.dumps({"messages": template}, indent=1) + "\n")
    return path


def load_prompt(reasoning: bool = False) -> ChatPromptTemplate:
    path = prompt_file(reasoning)
    if not path.exists():
        export_prompt(reasoning)
    messages = json.loads(path.read_text())["messages"]
    return ChatPromptTemplate.from_messages([(role, text) for role, text in messages])


def format_passages(docs: list[Document]) -> str:
    """Numbered passages exactly as Flywheel formats them."""
    return "\n\n".join(f"[{i}] ({d.metadata['citation']}) {d.page_content}" for i, d in enumerate(docs, 1))


def _finish(state: dict[str, Any]) -> dict[str, Any]:
    docs: list[Document] = state["docs"]
    reply: RAGAnswer | RAGReasonedAnswer = state["reply"]
    cited: list[Document] = []
    for number in reply.citations or []:
        if 1 <= int(number) <= len(docs) and docs[int(number) - 1] not in cited:
            cited.append(docs[int(number) - 1])
    found = bool(reply.answer.strip())
    return {
        "answer": reply.answer if found else NOT_FOUND,
        "citations": [d.metadata for d in cited] if found else [],
        "passages": [d.metadata for d in docs],
        "found": found,
    }


def _not_found(state: dict[str, Any]) -> dict[str, Any]:
    return {"answer": NOT_FOUND, "citations": [], "passages": [], "found": False}


def build_chain(
    retriever: LanceDBRetriever, llm: Any, prompt: ChatPromptTemplate | None = None, *, reasoning: bool = False
) -> Runnable:
    """The LCEL chain: ``{"question", "principal"}`` → ``{"answer", "citations", "passages", "found"}``."""
    prompt = prompt or load_prompt(reasoning)
    answer_type = RAGReasonedAnswer if reasoning else RAGAnswer
    structured = llm.with_structured_output(answer_type, method="json_schema", strict=True)
    answer = RunnablePassthrough.assign(
        reply=RunnableLambda(lambda s: {"passages": format_passages(s["docs"]), "question": s["question"]})
        | prompt
        | structured
    ) | RunnableLambda(_finish)
    retrieve = RunnablePassthrough.assign(
        docs=RunnableLambda(lambda s: retriever.invoke(s["question"], principal=s["principal"]))
    )
    return retrieve | RunnableBranch((lambda s: not s["docs"], RunnableLambda(_not_found)), answer)


def chat_model(settings: Any) -> Any:
    """ChatOpenAI for Flywheel's configured OpenAI-compatible LM (same model, temperature, max_tokens)."""
    from langchain_openai import ChatOpenAI

    lm = settings.lm
    return ChatOpenAI(
        model=lm.model,
        base_url=lm.api_base,
        api_key=lm.api_key() or "none",
        temperature=lm.temperature,
        max_tokens=lm.max_tokens,
        timeout=lm.timeout_s,
        max_retries=lm.max_retries,
    )


def build_from_settings(settings: Any) -> Runnable:
    """The chain over FLYWHEEL_HOME's index, with the LM Flywheel is configured to use."""
    from langchain_huggingface import HuggingFaceEmbeddings

    from flywheel.knowledge.embed import packaged_embedder_dir
    from flywheel.knowledge.index import ChunkIndex

    embedder = HuggingFaceEmbeddings(
        model_name=str(packaged_embedder_dir()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    dimensions = len(embedder.embed_query("dimensions"))
    index = ChunkIndex(settings.index_uri, dimensions, ann_min_rows=settings.knowledge.ann_min_rows)
    retriever = LanceDBRetriever(index=index, embedder=embedder, k=settings.programs.retrieval_k)
    return build_chain(retriever, chat_model(settings), reasoning=settings.reasons_by_default())


if __name__ == "__main__":
    if sys.argv[1:] == ["export-prompt"]:
        print(*export_prompts(), sep="\n")
    else:
        raise SystemExit("usage: python -m bench.langchain_rag export-prompt")
