"""``flywheel users`` and ``flywheel groups``: who may read what."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.table import Table

from flywheel.cli.common import console, knowledge_base

users_app = typer.Typer(help="Users and their groups.", no_args_is_help=True)
groups_app = typer.Typer(help="Groups documents are shared with.", no_args_is_help=True)


@users_app.command("add")
def add_user(
    name: str = typer.Argument(...),
    group: list[str] = typer.Option([], "--group", "-g", help="Member of this group (repeatable)."),
    admin: bool = typer.Option(False, "--admin", help="May manage every document."),
    display_name: str = typer.Option("", help="Human-readable name."),
) -> None:
    """Create a user, or add groups to an existing one."""
    principal = knowledge_base().catalog.add_user(name, group, display_name=display_name, is_admin=admin)
    console.print(
        f"{principal.user}: groups {', '.join(sorted(principal.groups))}" + (" (admin)" if principal.is_admin else "")
    )


@users_app.command("list")
def list_users() -> None:
    """All users with their groups."""
    table = Table(title="Users")
    for column in ("name", "display name", "groups", "admin"):
        table.add_column(column)
    for u in knowledge_base().catalog.list_users():
        table.add_row(u["name"], u["display_name"], ", ".join(u["groups"]), "yes" if u["is_admin"] else "")
    console.print(table)


@users_app.command("import")
def import_users(path: Path = typer.Argument(..., help="YAML with `groups:` and `users:` lists.")) -> None:
    """Create the groups and users described in a YAML file (idempotent)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    catalog = knowledge_base().catalog
    for group in data.get("groups", []):
        catalog.add_group(group["name"], group.get("description", ""))
    for user in data.get("users", []):
        catalog.add_user(
            user["name"],
            user.get("groups", []),
            display_name=user.get("display_name", ""),
            is_admin=bool(user.get("admin", False)),
        )
    console.print(f"Imported {len(data.get('groups', []))} groups and {len(data.get('users', []))} users.")


@groups_app.command("add")
def add_group(name: str = typer.Argument(...), description: str = typer.Option("", help="What the group is.")) -> None:
    """Create a group."""
    knowledge_base().catalog.add_group(name, description)
    console.print(f"Group {name} ready.")


@groups_app.command("list")
def list_groups() -> None:
    """All groups with their member counts."""
    table = Table(title="Groups")
    for column in ("name", "description", "members"):
        table.add_column(column)
    for g in knowledge_base().catalog.list_groups():
        table.add_row(g["name"], g["description"], str(g["members"]))
    console.print(table)
