"""``flywheel deploy``: the program as a registered MLflow pyfunc model, ready for `mlflow models serve`."""

from __future__ import annotations

from pathlib import Path

import typer

from flywheel.cli.common import console, settings


def deploy(
    program: str | None = typer.Option(None, "--program", "-p", help="rag, agent, classifier or a custom program."),
    alias: str = typer.Option("champion", "--alias", "--version", help="Registry alias to deploy."),
    new: bool = typer.Option(
        False,
        "--new",
        help="Register the current program as a new candidate version even when the alias already points at one.",
    ),
    responses_agent: Path | None = typer.Option(
        None,
        "--responses-agent",
        help="Also save that version as an MLflow ResponsesAgent model in this folder "
        "(`mlflow models serve` then speaks the OpenAI Responses shape).",
    ),
) -> None:
    """Register the program (with its champion state, if any) and print how to serve it."""
    from flywheel.assistant import Assistant
    from flywheel.errors import InvalidInputError, NotFoundError
    from flywheel.registry.programs import CHAMPION, ProgramRegistry, deploy_program

    config = settings()
    name = program or config.programs.default
    registry = ProgramRegistry(config)
    if alias != CHAMPION:
        existing = registry.get(name, alias)
        if existing is None:
            raise NotFoundError(
                f"Program {name!r} has no version with alias {alias!r}.",
                hint=f"Deploy the champion (`flywheel deploy -p {name}`) or promote a version first.",
            )
        if new:
            raise InvalidInputError(
                "--new registers the current program next to the champion, not another alias.",
                hint=f"Drop --alias {alias}, or drop --new.",
            )
        console.print(f"{registry.model_name(name)}@{alias} is version {existing.version}.")
        uri = registry.model_uri(name, alias)
    else:
        with console.status(f"Logging {name} as an MLflow pyfunc model…"):
            version, registered = deploy_program(registry, Assistant(config, registry=registry), name, new=new)
        uri = registry.model_uri(name, CHAMPION if version.is_champion else version.version)
        if not registered:
            console.print(f"{registry.model_name(name)}@{CHAMPION} is version {version.version}.")
        elif not version.is_champion:
            console.print(
                f"Registered {registry.model_name(name)} version {version.version} as a candidate "
                f"({CHAMPION} stays where it is)."
            )
        else:
            console.print(f"Registered {registry.model_name(name)} version {version.version} as {CHAMPION}.")
    console.print("Serve it with MLflow (it reads FLYWHEEL_* settings for the LM and the knowledge base):")
    console.print(
        f"  MLFLOW_TRACKING_URI={config.tracking_uri} mlflow models serve -m {uri} --env-manager local --port 5001",
        highlight=False,
        soft_wrap=True,
    )
    console.print("or with Flywheel's own service (API keys, documents, feedback, web page): flywheel serve")
    if responses_agent is not None:
        from flywheel.registry.responses_agent import save_responses_agent

        with console.status(f"Saving {name} ({alias}) as an MLflow ResponsesAgent…"):
            program_object = Assistant(config, registry=registry, alias=alias).program(name)
            save_responses_agent(responses_agent, name, program_object, config)
        console.print(
            f"As a ResponsesAgent: mlflow models serve -m {responses_agent} --env-manager local "
            '--port 5002  (POST /invocations with {"input": [messages], "custom_inputs": '
            '{"user": …}})',
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    typer.echo(uri)
