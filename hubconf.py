"""PyTorch Hub entry points, named and called as openunmix's::

    separator = torch.hub.load("<owner>/unmix", "umxhq", device="cpu")
    estimates = separator(audio)          # (S, C, T) at 44.1 kHz -> (S, J, C, T)
    models = torch.hub.load("<owner>/unmix", "umxhq_spec")   # {target: OpenUnmix}

``umxhq``, ``umx``, ``umxl``, ``umxse``, ``xumx``, ``umx_preview`` and ``umx_preview2``
return a frozen :class:`unmix.separator.Separator` (the STFT, the network(s) and the Wiener
filter);
the ``*_spec`` variants return the spectrogram networks alone, one per target as in
openunmix (``xumx_spec``: ``{"xumx": XUMX}``, its targets being coupled). Weights come
from the registry (downloaded once into unmix's cache, SHA-256 checked); licences as
``unmix models`` lists them (``umxl``: CC BY-NC-SA 4.0; ``umx_preview`` and
``umx_preview2``: trained on non-commercial data).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SRC = Path(__file__).resolve().parent / "src"
if (_SRC / "unmix").is_dir() and str(_SRC) not in sys.path:  # a torch.hub checkout
    sys.path.insert(0, str(_SRC))

dependencies = ["torch", "numpy", "av", "soundfile", "soxr", "safetensors", "tqdm"]


def _model(name: str, targets: Sequence[str] | None, pretrained: bool) -> tuple[Any, Any]:
    from unmix.hub.loading import load_model
    from unmix.hub.registry import get_bundle
    from unmix.models.architectures import get_architecture

    if pretrained:
        config, net = load_model(name)
    else:
        config = get_bundle(name).config
        net = get_architecture(config.arch).build(config)
    if targets:
        net = net.select_targets(targets)
        config = config.with_(targets=net.targets)
    return config, net


def _separator(
    name: str,
    targets: Sequence[str] | None,
    residual: bool,
    niter: int,
    device: str,
    pretrained: bool,
    wiener_win_len: int | None,
    softmask: bool,
) -> Any:
    from unmix.filtering import WienerSettings
    from unmix.separator import Separator

    config, net = _model(name, targets, pretrained)
    wiener = WienerSettings(
        niter=niter, softmask=softmask, residual=residual, wiener_win_len=wiener_win_len
    )
    return Separator(net, config, wiener).freeze().to(device)


def _spec(name: str, targets: Sequence[str] | None, device: str, pretrained: bool) -> Any:
    from unmix.models.umx import UMX

    _, net = _model(name, targets, pretrained)
    if isinstance(net, UMX):  # independent per-target networks, as openunmix returns them
        return {target: branch.to(device) for target, branch in net.branches.items()}
    return {name: net.to(device)}


def _entry(name: str) -> tuple[Any, Any]:
    """The separator and ``_spec`` entry points of registry model ``name``."""

    def separator(
        targets: Sequence[str] | None = None,
        residual: bool = False,
        niter: int = 1,
        device: str = "cpu",
        pretrained: bool = True,
        wiener_win_len: int | None = 300,
        softmask: bool = False,
    ) -> Any:
        return _separator(
            name, targets, residual, niter, device, pretrained, wiener_win_len, softmask
        )

    def spec(
        targets: Sequence[str] | None = None, device: str = "cpu", pretrained: bool = True
    ) -> Any:
        return _spec(name, targets, device, pretrained)

    separator.__doc__ = (
        f"A frozen Separator of the {name!r} model (audio (S, C, T) at the model rate -> "
        "estimates (S, J, C, T)); arguments as openunmix's entry points."
    )
    spec.__doc__ = f"The spectrogram network(s) of the {name!r} model, by target."
    return separator, spec


umxhq, umxhq_spec = _entry("umxhq")
umx, umx_spec = _entry("umx")
umxl, umxl_spec = _entry("umxl")
umxse, umxse_spec = _entry("umxse")
xumx, xumx_spec = _entry("xumx")
umx_preview, umx_preview_spec = _entry("umx-preview")
umx_preview2, umx_preview2_spec = _entry("umx-preview2")
