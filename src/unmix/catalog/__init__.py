"""Catalog-scale separation on Ray (``unmix separate ... --engine ray``).

``ledger``: the run ledger ``OUT/unmix-run.jsonl``; ``plan``: inputs, manifests, resume and
refusal decisions, longest-first order; ``worker``: the actor that separates whole files with
the engine; ``pipeline``: the Ray Data pipeline (the only module importing Ray); ``progress``:
files, audio hours, throughput, ETA; ``cli``: the options and the driver. See
``docs/catalog.md``.
"""
