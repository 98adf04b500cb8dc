"""``flywheel lm``: ask the configured LM, or serve the embedded model over HTTP."""

from __future__ import annotations

import typer
from rich.console import Console

from flywheel.config import load_settings
from flywheel.errors import ConfigError

app = typer.Typer(help="The language model: ask it, or serve the embedded model.", no_args_is_help=True)
console = Console()


@app.command("ask")
def ask(
    question: str = typer.Argument(..., help="A question for the configured LM."),
    context: str = typer.Option("", help="Optional context passage."),
) -> None:
    """One ChainOfThought answer from the configured LM (embedded by default)."""
    import dspy

    from flywheel.lm import configure_dspy, lm_failure

    settings = load_settings()
    configure_dspy(settings)
    program = dspy.ChainOfThought("context, question -> answer")
    try:
        with console.status("Thinking…"):
            result = program(context=context or "(none)", question=question)
    except Exception as exc:
        raise lm_failure(exc, settings.lm) from exc
    console.print(f"[dim]reasoning:[/] {result.reasoning}")
    console.print(f"[bold]answer:[/] {result.answer}")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8081, help="TCP port."),
) -> None:
    """Serve the embedded model as an OpenAI-compatible /v1/chat/completions endpoint."""
    from flywheel.lm import embedded_engine
    from flywheel.lm.server import serve as run_server

    settings = load_settings()
    if settings.lm.provider != "embedded":
        raise ConfigError(
            "`flywheel lm serve` serves the embedded model, but lm.provider is 'openai'.",
            hint="Unset FLYWHEEL_LM__PROVIDER (or set it to 'embedded') for the serving process.",
        )
    engine = embedded_engine(settings.lm)
    with engine.context():  # load the model before accepting requests; fail fast on a bad file
        pass
    console.print(f"Serving {settings.lm.model} on http://{host}:{port}/v1 (Ctrl-C to stop)")
    run_server(engine, host=host, port=port, model_name=settings.lm.model, default_max_tokens=settings.lm.max_tokens)
