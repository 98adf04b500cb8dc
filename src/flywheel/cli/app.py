"""The ``flywheel`` Typer app and its error boundary (clear messages, no tracebacks)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from flywheel.cli import ask as ask_cmd
from flywheel.cli import backup as backup_cmd
from flywheel.cli import classify as classify_cmd
from flywheel.cli import deploy as deploy_cmd
from flywheel.cli import docs as docs_cmd
from flywheel.cli import doctor as doctor_cmd
from flywheel.cli import evaluate as evaluate_cmd
from flywheel.cli import feedback as feedback_cmd
from flywheel.cli import keys as keys_cmd
from flywheel.cli import lm as lm_cmd
from flywheel.cli import maintenance as maintenance_cmd
from flywheel.cli import mcp as mcp_cmd
from flywheel.cli import programs as programs_cmd
from flywheel.cli import search as search_cmd
from flywheel.cli import serve as serve_cmd
from flywheel.cli import users as users_cmd
from flywheel.errors import FlywheelError

app = typer.Typer(
    name="flywheel",
    help="Flywheel: self-improving LLM pipelines (DSPy), self-hosted and offline by default.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("doctor")(doctor_cmd.doctor)
app.command("config")(doctor_cmd.show_config)
app.command("ask")(ask_cmd.ask)
app.command("chat")(ask_cmd.chat)
app.command("search")(search_cmd.search)
app.command("classify")(classify_cmd.classify)
app.add_typer(docs_cmd.app, name="docs")
app.add_typer(users_cmd.users_app, name="users")
app.add_typer(users_cmd.groups_app, name="groups")
app.add_typer(lm_cmd.app, name="lm")
app.add_typer(maintenance_cmd.app, name="maintenance")
app.command("serve")(serve_cmd.serve)
app.command("backup")(backup_cmd.backup)
app.command("restore")(backup_cmd.restore)
app.command("mcp")(mcp_cmd.mcp)
app.command("deploy")(deploy_cmd.deploy)
app.add_typer(keys_cmd.app, name="keys")
app.command("eval")(evaluate_cmd.evaluate)
app.command("optimize")(evaluate_cmd.optimize)
app.add_typer(programs_cmd.app, name="programs")
app.add_typer(feedback_cmd.app, name="feedback")

err_console = Console(stderr=True, soft_wrap=True)


def main() -> None:
    """Entry point: run the app; print Flywheel errors as one clear message and exit 1."""
    try:
        result = app(standalone_mode=False)
        if isinstance(result, int) and result:  # click returns typer.Exit codes in this mode
            sys.exit(result)
    except FlywheelError as exc:
        err_console.print(f"[bold red]Error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"[yellow]How to fix:[/] {exc.hint}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
