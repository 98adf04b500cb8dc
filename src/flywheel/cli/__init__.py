"""The ``flywheel`` command line (Typer): one module per command group."""
