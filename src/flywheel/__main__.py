"""``python -m flywheel`` runs the CLI."""

from flywheel.cli.app import main

main()
