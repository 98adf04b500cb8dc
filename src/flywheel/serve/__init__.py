"""The REST service and web chat page (FastAPI): ``create_app(settings)``; ``flywheel serve`` runs it."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:  # FastAPI is imported only when the service is used
    if name == "create_app":
        from flywheel.serve.app import create_app

        return create_app
    raise AttributeError(name)
