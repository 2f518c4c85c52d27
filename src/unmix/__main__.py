"""``python -m unmix`` runs the CLI."""

from .cli import main

raise SystemExit(main())
