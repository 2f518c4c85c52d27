"""Sub-commands of the ``unmix`` CLI (argument parsing only; they call the public API)."""
