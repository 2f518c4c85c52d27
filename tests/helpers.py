"""Helpers shared by tests: reference models with random weights and non-trivial stats,
and the flags of tiny training runs."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import types
from collections import OrderedDict
from pathlib import Path

import torch

from unmix.config import ModelConfig


def import_openunmix() -> types.ModuleType:
    """Import openunmix 1.3.0, the test/benchmark-only oracle, with an empty torchaudio
    stand-in: it imports torchaudio at import time without needing it for the model, the
    Wiener filter or the STFT, and no torchaudio release matches our torch.

    Raises:
        ImportError: openunmix is not installed.
    """
    if "torchaudio" not in sys.modules:
        try:
            importlib.import_module("torchaudio")
        except ImportError:
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    return importlib.import_module("openunmix")


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Give every parameter and BatchNorm statistic random, non-trivial values.

    Weights are scaled by 1/sqrt(fan-in) and BatchNorm gains are near one, so every layer,
    the LSTM included, changes the output (``test_lstm_matters`` checks this). The output
    affine gives masks of about 0.25 ± 0.1 per target, so the four estimates roughly add up
    to the mixture as with trained weights (wildly over-estimating random masks make the
    float32 EM of the reference ill-conditioned).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == "input_mean":
                p.copy_(-torch.rand(p.shape, generator=gen) * 0.5)
            elif name == "input_scale":
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name == "output_scale":
                p.copy_(0.05 + 0.1 * torch.rand(p.shape, generator=gen))
            elif name == "output_mean":
                p.copy_(0.1 + 0.3 * torch.rand(p.shape, generator=gen))
            elif name.startswith("bn") and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))


def reference_state_dicts(
    openunmix, config: ModelConfig, seed: int = 0, legacy: bool = True
) -> dict[str, OrderedDict]:
    """Per-target state dicts of openunmix models laid out like the official files."""
    states = {}
    for k, target in enumerate(config.targets):
        net = openunmix.model.OpenUnmix(
            nb_bins=config.nb_bins,
            nb_channels=config.nb_channels,
            hidden_size=config.hidden_size,
            nb_layers=config.nb_layers,
            unidirectional=config.unidirectional,
            max_bin=config.max_bin,
        )
        randomize(net, seed + k)
        sd = OrderedDict(net.state_dict())
        if legacy:
            window = torch.hann_window(config.n_fft)
            sd["sample_rate"] = torch.tensor(config.sample_rate)
            sd["stft.window"] = window
            sd["transform.0.window"] = window
        states[target] = sd
    return states


#: a tiny, fast training run: ``unmix train`` settings without the leading dashes
TINY_RUN: dict[str, object] = {
    "hidden-size": 16,
    "nfft": 1024,
    "nhop": 512,
    "seq-dur": 0.5,
    "samples-per-track": 4,
}


def train_flags(
    root: Path, out: Path, cache: Path, quiet: bool = True, **settings: object
) -> list[str]:
    """``unmix train`` flags: ``--root``, ``--output``, ``--cache-dir``, then ``settings``
    (``name=value``; ``True``: a bare switch, ``False``: left out), then ``--quiet`` (errors
    only: no progress bar and no log lines) unless ``quiet`` is false."""
    flags: dict[str, object] = {"root": root, "output": out, "cache-dir": cache, **settings}
    argv = [f"--{k}" if v is True else f"--{k}={v}" for k, v in flags.items() if v is not False]
    return [*argv, "--quiet"] if quiet else argv


def sigterm_while_writing(argv: list[str], out: Path, nb_parts: int) -> str:
    """Run the command ``argv`` (one thread), send it SIGTERM once ``nb_parts`` temporary
    ``*.part`` files exist under ``out``, and check that it stopped the documented way
    (exit 143, "interrupted (SIGTERM)", no traceback); returns its stderr."""
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    deadline = time.monotonic() + 120
    while len(list(out.rglob("*.part"))) < nb_parts and time.monotonic() < deadline:
        assert proc.poll() is None, "separation ended before it could be stopped"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "interrupted (SIGTERM)" in err
    return err
