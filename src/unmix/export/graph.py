"""The whole separation as one traceable module: waveform in, stems out.

:class:`SeparationGraph` wraps a :class:`~unmix.separator.Separator` and computes what it
computes for one mixture, with graph-friendly parts only: :class:`GraphSTFT` (ONNX
``STFT``), the model (any :class:`~unmix.models.contract.SeparationModel`, unchanged), the
Wiener EM in real arithmetic over all windows at once (:mod:`unmix.export.wiener`) and
:class:`GraphISTFT` (ONNX ``DFT`` and an overlap-add).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..separator import Separator
from .folding import folded_branches
from .spectral import GraphISTFT, GraphSTFT
from .wiener import from_windows, to_windows, wiener_windows


class SeparationGraph(nn.Module):
    """``mixture (C, T)`` → ``stems (J', C, T)`` for a fixed channel count.

    Args:
        separator: the frozen torch separator (its model, STFT and Wiener settings).
        nb_channels: channels of the graph's input (1 or 2).
    """

    def __init__(self, separator: Separator, nb_channels: int) -> None:
        super().__init__()
        config = separator.config
        self.model = separator.model
        self.wiener = separator.wiener
        self.nb_channels = nb_channels
        self.mono_model = config.nb_channels == 1
        self.stft = GraphSTFT(config.n_fft, config.n_hop)
        self.istft = GraphISTFT(config.n_fft, config.n_hop)
        self.folded = folded_branches(self.model)

    def magnitudes(self, mag: Tensor) -> Tensor:
        """Mixture magnitude ``(C, N, F)`` → target magnitudes ``(J, C, N, F)``.

        A :class:`~unmix.models.umx.UMX` runs its branches here, their affine maps folded
        (:mod:`~unmix.export.folding`), and stacks them (what its ``forward`` computes,
        without the output buffer that becomes four ``ScatterND`` copies in the graph);
        other models run their own ``forward``.
        """
        if self.folded is not None:
            x = mag.transpose(0, 1)  # (N, C, F)
            masks = [branch(x) for branch in self.folded]
            return (torch.stack(masks) * x).transpose(1, 2)
        V: Tensor = self.model(mag.transpose(1, 2)[None])[0]  # (C_model, F, N, J)
        return V.permute(3, 0, 2, 1)

    def forward(self, mixture: Tensor) -> Tensor:
        """Separate ``(nb_channels, nb_samples)`` (``nb_samples > n_fft // 2``) → ``(J', C, nb_samples)``."""
        xr, xi = self.stft(mixture)  # (C, N, F) each
        mag = torch.sqrt(xr * xr + xi * xi)  # (C, N, F)
        if self.mono_model:
            mag = mag.mean(dim=0, keepdim=True)
        V = self.magnitudes(mag)  # (J, C_model, N, F)
        length = None if self.wiener.niter == 0 else self.wiener.wiener_win_len
        y_re, y_im = wiener_windows(
            to_windows(V, length),
            (to_windows(xr, length)[:, None], to_windows(xi, length)[:, None]),
            self.wiener,
        )
        nb_frames = xr.shape[1]
        re, im = from_windows(y_re, nb_frames), from_windows(y_im, nb_frames)  # (J', C, N, F)
        nb_out, nb_channels = re.shape[0], re.shape[1]
        flat = (re.reshape(nb_out * nb_channels, *re.shape[2:]), im.reshape(-1, *im.shape[2:]))
        audio: Tensor = self.istft(*flat, mixture)
        return audio.reshape(nb_out, nb_channels, -1)
