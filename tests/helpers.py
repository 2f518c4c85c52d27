"""Helpers shared by tests: reference models with random weights and non-trivial stats."""

from __future__ import annotations

from collections import OrderedDict

import torch

from unmix.config import ModelConfig


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Give every parameter and BatchNorm statistic random, non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in ("input_mean",):
                p.copy_(-torch.rand(p.shape, generator=gen) * 0.5)
            elif name in ("input_scale",):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen) * 2)
            elif name == "output_scale":
                # masks of about 0.25 ± 0.1 per target: the four estimates roughly add up to
                # the mixture, as with trained weights (wildly over-estimating random masks
                # make the float32 EM of the reference ill-conditioned)
                p.copy_(0.05 + 0.1 * torch.rand(p.shape, generator=gen))
            elif name == "output_mean":
                p.copy_(0.1 + 0.3 * torch.rand(p.shape, generator=gen))
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
