"""``flywheel keys``: API keys for the REST service (stored hashed; shown once)."""

from __future__ import annotations

import typer
from rich.table import Table

from flywheel.cli.common import console, knowledge_base, settings

app = typer.Typer(help="API keys for `flywheel serve` (stored hashed; the key is shown once).", no_args_is_help=True)


def _store():  # type: ignore[no-untyped-def]
    from flywheel.stores.keys import ApiKeyStore

    settings().ensure_dirs()
    return ApiKeyStore(settings().catalog_url)


@app.command("create")
def create(user: str = typer.Argument(..., help="An existing user (see `flywheel users list`).")) -> None:
    """Create a key for USER and print it (the last line of output is the key itself)."""
    principal = knowledge_base().principal(user)  # an unknown user is a clear error
    key_id, plaintext = _store().create(principal.user)
    typer.echo(
        f"Created API key {key_id} for {principal.user} (groups: {', '.join(sorted(principal.groups))}).", err=True
    )
    typer.echo("Store it now: it cannot be shown again. Send it as 'Authorization: Bearer <key>'.", err=True)
    typer.echo(plaintext)


@app.command("list")
def list_keys(user: str | None = typer.Option(None, "--user", help="Only this user's keys.")) -> None:
    """Every key: id, visible prefix, user, created, revoked (never the key itself)."""
    table = Table(title="API keys")
    for column in ("id", "prefix", "user", "created", "status"):
        table.add_column(column)
    for key in _store().list(user):
        status = "active" if key["active"] else f"revoked {key['revoked_at'][:19]}"
        table.add_row(key["id"], key["prefix"] + "…", key["user"], (key["created_at"] or "")[:19], status)
    console.print(table)


@app.command("revoke")
def revoke(key: str = typer.Argument(..., help="A key id or the key's visible prefix (see `keys list`).")) -> None:
    """Revoke a key: requests with it are refused from now on."""
    row = _store().revoke(key)
    console.print(f"Revoked key {row['id']} ({row['prefix']}…) of {row['user']}.")
