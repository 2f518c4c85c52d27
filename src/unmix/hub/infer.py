"""Derive a UMX :class:`~unmix.config.ModelConfig` from the shapes of its weights.

Folders of upstream ``.pth`` files and NNabla releases carry no configuration: ``n_fft``,
``nb_channels``, ``hidden_size``, ``max_bin``, ``nb_layers`` and ``unidirectional`` follow
from the tensor shapes. The sizes are checked by :class:`~unmix.config.ModelConfig`
(bounded, see ``unmix.config.LIMITS``) before any network is built.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from ..config import CONFIGS, ModelConfig
from ..errors import WeightsError
from .weights import strip_legacy


def _shapes(state: Mapping[str, Tensor]) -> tuple[int, int, int, int]:
    """``(nb_bins, max_bin, hidden, fc1_in)``, checked to be usable sizes."""
    try:
        out_mean, in_mean, fc1 = state["output_mean"], state["input_mean"], state["fc1.weight"]
    except KeyError as exc:
        raise WeightsError(f"not an Open-Unmix state dict: key {exc} is missing") from exc
    if out_mean.ndim != 1 or in_mean.ndim != 1 or fc1.ndim != 2 or min(fc1.shape) == 0:
        raise WeightsError(
            "not an Open-Unmix state dict: output_mean and input_mean must be vectors and "
            f"fc1.weight a matrix, got {tuple(out_mean.shape)}, {tuple(in_mean.shape)}, "
            f"{tuple(fc1.shape)}"
        )
    nb_bins, max_bin = out_mean.shape[0], in_mean.shape[0]
    hidden, fc1_in = fc1.shape
    if max_bin == 0 or nb_bins < 2 or fc1_in % max_bin:
        raise WeightsError(
            f"not an Open-Unmix state dict: fc1.weight {tuple(fc1.shape)} does not fit "
            f"input_mean {tuple(in_mean.shape)}"
        )
    return int(nb_bins), int(max_bin), int(hidden), int(fc1_in)


def _released(n_fft: int, nb_channels: int, hidden: int, max_bin: int) -> ModelConfig | None:
    """A released configuration with these shapes (it tells the rate and hop)."""
    for config in CONFIGS.values():
        if (config.n_fft, config.nb_channels, config.hidden_size, config.input_bins) == (
            n_fft,
            nb_channels,
            hidden,
            max_bin,
        ):
            return config
    return None


def _legacy_rate(state: Mapping[str, Tensor]) -> int | None:
    """The ``sample_rate`` tensor of the 2019 files, if it is one finite number."""
    value = state.get("sample_rate")
    if isinstance(value, Tensor) and value.numel() == 1 and bool(value.isfinite().all()):
        return int(value.item())
    return None


def infer_config(
    states: Mapping[str, Mapping[str, Tensor]],
    base: ModelConfig | None = None,
    sample_rate: int | None = None,
    n_hop: int | None = None,
) -> ModelConfig:
    """A UMX config from the shapes of per-target state dicts ``{target: state}``.

    ``sample_rate`` and ``n_hop`` come from the arguments, ``base`` (Default: a released
    configuration with the same shapes), the legacy ``sample_rate`` tensor, or default to
    44100 and ``n_fft // 4``.

    Raises:
        WeightsError: not an Open-Unmix state dict.
        UnmixError: sizes out of bounds (from :class:`ModelConfig`).
    """
    first_raw = next(iter(states.values()))
    first = strip_legacy(first_raw)
    nb_bins, max_bin, hidden, fc1_in = _shapes(first)
    n_fft = 2 * (nb_bins - 1)
    nb_channels = fc1_in // max_bin
    base = base or _released(n_fft, nb_channels, hidden, max_bin)
    rate = sample_rate or (base.sample_rate if base else None) or _legacy_rate(first_raw)
    hop = n_hop or (base.n_hop if base and base.n_fft == n_fft else n_fft // 4)
    return ModelConfig(
        targets=tuple(states),
        sample_rate=rate or 44100,
        n_fft=n_fft,
        n_hop=hop,
        nb_channels=nb_channels,
        hidden_size=hidden,
        nb_layers=sum(1 for k in first if k.startswith("lstm.weight_ih_l") and "reverse" not in k),
        max_bin=max_bin,
        unidirectional=not any(k.endswith("_reverse") for k in first),
    )
