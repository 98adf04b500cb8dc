"""``flywheel deploy``: the program as a registered MLflow pyfunc model, ready for `mlflow models serve`."""

from __future__ import annotations

import typer

from flywheel.cli.common import console, settings


def deploy(
    program: str | None = typer.Option(None, "--program", "-p", help="rag, agent, classifier or a custom program."),
    alias: str = typer.Option("champion", "--alias", "--version", help="Registry alias to deploy."),
    new: bool = typer.Option(False, "--new", help="Register the current program as a new candidate version even "
                                                  "when the alias already points at one."),
) -> None:
    """Register the program (with its champion state, if any) and print how to serve it."""
    from flywheel.errors import NotFoundError
    from flywheel.programs.assistant import Assistant
    from flywheel.registry.programs import CHAMPION, ProgramRegistry

    config = settings()
    name = program or config.programs.default
    registry = ProgramRegistry(config)
    existing = registry.get(name, alias)
    if existing is None and alias != CHAMPION:
        raise NotFoundError(f"Program {name!r} has no version with alias {alias!r}.",
                            hint=f"Deploy the champion (`flywheel deploy -p {name}`) or promote a version first.")
    uri = registry.model_uri(name, alias)
    if existing is None or new:
        assistant = Assistant(config, registry=registry, alias=alias)
        with console.status(f"Logging {name} as an MLflow pyfunc model…"):
            version = registry.register(name, assistant.program(name), description="flywheel deploy")
            if existing is None:
                version = registry.promote(name, version.version, reason="first deployment")
        if existing is not None:
            uri = registry.model_uri(name, version.version)
            console.print(f"Registered {registry.model_name(name)} version {version.version} as a candidate "
                          f"({alias} stays at version {existing.version}).")
        else:
            console.print(f"Registered {registry.model_name(name)} version {version.version} as {alias}.")
    else:
        console.print(f"{registry.model_name(name)}@{alias} is version {existing.version}.")
    console.print("Serve it with MLflow (it reads FLYWHEEL_* settings for the LM and the knowledge base):")
    console.print(f"  MLFLOW_TRACKING_URI={config.tracking_uri} mlflow models serve -m {uri} "
                  "--env-manager local --port 5001", highlight=False, soft_wrap=True)
    console.print("or with Flywheel's own service (API keys, documents, feedback, web page): flywheel serve")
    typer.echo(uri)
