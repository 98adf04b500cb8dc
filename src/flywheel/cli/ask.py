"""``flywheel ask`` and ``flywheel chat``: questions to the RAG chatbot or the agent, as a user."""

from __future__ import annotations

from typing import Any

import typer
from rich.panel import Panel

from flywheel.cli.common import console, settings


def _assistant() -> Any:
    from flywheel.assistant import Assistant
    from flywheel.lm import configure_dspy
    from flywheel.registry.programs import registry_if_configured

    configure_dspy(settings())
    return Assistant(settings(), registry=registry_if_configured(settings()))


def _render(reply: dict[str, Any], show_sources: bool = False) -> None:
    console.print(Panel(reply["answer"], title=f"{reply['program']} answer", expand=False))
    for i, citation in enumerate(reply["citations"], 1):
        label = citation.get("citation") or f"{citation.get('table', '')} {citation.get('record', '')}".strip()
        console.print(f"  [{i}] {label}", highlight=False)
    if show_sources:
        for i, passage in enumerate(reply["passages"], 1):
            console.print(Panel(passage["text"], title=f"passage {i}: {passage['citation']}", expand=False))
        for step in reply["steps"]:
            console.print(Panel(step["output"], title=f"{step['tool']}({step['input']!r})", expand=False))


def ask(
    question: str = typer.Argument(..., help="Your question."),
    user: str = typer.Option(..., "--as", help="Ask as this user: only their groups' documents are used."),
    program: str | None = typer.Option(None, "--program", "-p", help="rag, agent, or a custom program name."),
    sources: bool = typer.Option(False, "--sources", help="Also print the retrieved passages / tool outputs."),
) -> None:
    """Answer one question with citations."""
    from flywheel.lm import is_lm_exception, lm_failure

    assistant = _assistant()
    principal = assistant.knowledge.principal(user)
    try:
        with console.status("Thinking…"):
            reply = assistant.ask(question, principal, program=program)
    except Exception as exc:
        if not is_lm_exception(exc):
            raise  # a bug: Typer prints the traceback (and the FlywheelErrors raised above print cleanly)
        raise lm_failure(exc, settings().lm) from exc
    _render(reply, sources)


def chat(
    user: str = typer.Option(..., "--as", help="Chat as this user."),
    program: str | None = typer.Option(None, "--program", "-p", help="rag, agent, or a custom program name."),
) -> None:
    """Interactive chat with history. Commands: /sources (passages of the last answer), /new, /quit."""
    from flywheel.errors import FlywheelError
    from flywheel.lm import is_lm_exception, lm_failure

    assistant = _assistant()
    principal = assistant.knowledge.principal(user)
    conversation: str | None = None
    last: dict[str, Any] | None = None
    console.print(f"Chatting as {user} ({', '.join(sorted(principal.groups))}). /sources, /new, /quit.")
    while True:
        try:
            question = console.input("[bold]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if question in ("/quit", "/exit"):
            break
        if question == "/new":
            conversation, last = None, None
            console.print("New conversation.")
            continue
        if question == "/sources":
            if last:
                _render(last, show_sources=True)
            continue
        if not question:
            continue
        try:
            with console.status("Thinking…"):
                last = assistant.ask(question, principal, program=program, conversation_id=conversation)
        except FlywheelError as exc:
            console.print(f"[red]{exc}[/]")
            continue
        except Exception as exc:
            if not is_lm_exception(exc):
                raise
            console.print(f"[red]{lm_failure(exc, settings().lm)}[/]")
            continue
        conversation = last["conversation_id"]
        _render(last)
