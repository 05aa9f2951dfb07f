"""``python -m driftline`` runs the CLI."""

from driftline.cli import main

main()
