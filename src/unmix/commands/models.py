"""``unmix models``: list the model zoo."""

from __future__ import annotations

import argparse

from ..hub.registry import BUNDLES, DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models",
        help="list the pretrained models",
        description="List the registered pretrained models with their licences.",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name, b in BUNDLES.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        c = b.config
        print(f"{name}{default}: {b.description}")
        print(
            f"    targets {', '.join(c.targets)}; {c.sample_rate} Hz; n_fft {c.n_fft}, "
            f"hop {c.n_hop}; hidden {c.hidden_size}; licence: {b.licence}"
        )
    return 0
