"""Time-frequency transforms: STFT, ISTFT, magnitude and channel downmix.

Conventions follow Open-Unmix so that the official weights see the same input:
periodic Hann window of length ``n_fft``, reflect padding, no normalisation,
one-sided spectra. ``center=True`` is used for separation, ``center=False`` for
the training loss and the input statistics.

Complex spectrograms are native complex tensors here (``torch.complex64``);
the Wiener stage works on them directly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class STFT(nn.Module):
    """Short-time Fourier transform of multichannel audio.

    Args:
        n_fft: FFT size and window length.
        n_hop: hop size in samples.
        center: reflect-pad ``n_fft // 2`` samples on both sides (separation: True).
    """

    window: Tensor

    def __init__(self, n_fft: int = 4096, n_hop: int = 1024, center: bool = True) -> None:
        super().__init__()
        if n_fft <= 0 or n_hop <= 0:
            raise ValueError(f"n_fft and n_hop must be positive, got {n_fft} and {n_hop}")
        self.n_fft = n_fft
        self.n_hop = n_hop
        self.center = center
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        """Args:
            audio: ``(..., nb_timesteps)``, e.g. ``(nb_samples, nb_channels, nb_timesteps)``.

        Returns:
            complex spectrogram ``(..., nb_bins, nb_frames)`` with ``nb_bins = n_fft // 2 + 1``.
        """
        shape = audio.shape
        flat = audio.reshape(-1, shape[-1])
        spec = torch.stft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.n_hop,
            window=self.window.to(flat.dtype),
            center=self.center,
            normalized=False,
            onesided=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.reshape(*shape[:-1], spec.shape[-2], spec.shape[-1])


class ISTFT(nn.Module):
    """Inverse of :class:`STFT` (overlap-add divided by the summed squared window)."""

    window: Tensor

    def __init__(self, n_fft: int = 4096, n_hop: int = 1024, center: bool = True) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.n_hop = n_hop
        self.center = center
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, spec: Tensor, length: int | None = None) -> Tensor:
        """Args:
            spec: complex ``(..., nb_bins, nb_frames)``.
            length: number of output samples (pass the input length to undo padding).

        Returns:
            audio ``(..., nb_timesteps)``.
        """
        shape = spec.shape
        flat = spec.reshape(-1, shape[-2], shape[-1])
        audio = torch.istft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.n_hop,
            window=self.window.to(flat.real.dtype),
            center=self.center,
            normalized=False,
            onesided=True,
            length=length,
        )
        return audio.reshape(*shape[:-2], audio.shape[-1])

    def padded_length(self, nb_frames: int) -> int:
        """Samples an overlap-add accumulator needs for ``nb_frames`` frames."""
        return (nb_frames - 1) * self.n_hop + self.n_fft

    def overlap_add(self, frames: Tensor, out: Tensor, first_frame: int) -> None:
        """Add the windowed inverse FFT of some frames into an accumulator, in place.

        Calling this on consecutive groups of frames and then :meth:`normalize` gives
        :meth:`forward` of the whole spectrogram (to float rounding) without holding all the
        time-domain frames at once.

        Args:
            frames: complex ``(..., nb_frames, nb_bins)`` (frames first, bins contiguous).
            out: accumulator ``(..., padded_length(total frames))`` with the same leading
                dimensions, e.g. from :meth:`padded_length`; modified in place.
            first_frame: index of ``frames``' first frame in the whole spectrogram.
        """
        if not out.is_contiguous() or out.shape[:-1] != frames.shape[:-2]:
            raise ValueError(
                f"out must be a contiguous accumulator (..., T) for frames {tuple(frames.shape)}, "
                f"got {tuple(out.shape)}"
            )
        count = frames.shape[-2]
        time = torch.fft.irfft(frames, n=self.n_fft, dim=-1).reshape(-1, count, self.n_fft)
        acc = out.view(-1, out.shape[-1])
        window = self.window.to(out.dtype)
        if self.n_fft % self.n_hop:
            _overlap_add(time * window, acc, first_frame * self.n_hop, self.n_hop)
            return
        # hop-long pieces, windowed as they are added: piece k of frame n lands at block n + k
        pieces = time.reshape(time.shape[0], count, -1, self.n_hop)
        for k in range(pieces.shape[2]):
            start = (first_frame + k) * self.n_hop
            target = acc[:, start : start + count * self.n_hop].view(-1, count, self.n_hop)
            target.addcmul_(pieces[:, :, k], window[k * self.n_hop : (k + 1) * self.n_hop])

    def normalize(self, out: Tensor, nb_frames: int, length: int) -> Tensor:
        """Finish an overlap-add: divide by the summed squared window, undo the centring.

        Args:
            out: accumulator ``(..., padded_length(nb_frames))`` filled by :meth:`overlap_add`.
            nb_frames: frames that were added in total.
            length: output samples (the input length of the STFT).

        Returns:
            audio ``(..., length)``.
        """
        envelope = out.new_zeros(1, out.shape[-1])
        squared = (self.window.to(out.dtype) ** 2).expand(nb_frames, self.n_fft)
        _overlap_add(squared[None], envelope, 0, self.n_hop)
        start = self.n_fft // 2 if self.center else 0
        stop = min(start + length, out.shape[-1])
        audio = out[..., start:stop] / envelope[0, start:stop]
        if audio.shape[-1] < length:
            audio = nn.functional.pad(audio, (0, length - audio.shape[-1]))
        return audio


def _overlap_add(frames: Tensor, out: Tensor, offset: int, n_hop: int) -> None:
    """``out[b, offset + n·n_hop + t] += frames[b, n, t]`` for ``frames (B, N, L)``, in place."""
    batch, count, size = frames.shape
    if size % n_hop == 0:
        # split each frame into hop-long pieces: piece k of frame n lands at block n + k
        pieces = frames.reshape(batch, count, size // n_hop, n_hop)
        for k in range(size // n_hop):
            start = offset + k * n_hop
            out[:, start : start + count * n_hop] += pieces[:, :, k].reshape(batch, -1)
        return
    span = (count - 1) * n_hop + size
    folded = nn.functional.fold(
        frames.transpose(1, 2), output_size=(1, span), kernel_size=(1, size), stride=(1, n_hop)
    )
    out[:, offset : offset + span] += folded.reshape(batch, span)


def magnitude(spec: Tensor, mono: bool = False) -> Tensor:
    """Magnitude (power 1) of a complex spectrogram: the one place the model input is made.

    Args:
        spec: complex ``(..., nb_channels, nb_bins, nb_frames)``, e.g.
            ``(nb_samples, nb_channels, nb_bins, nb_frames)``.
        mono: average the channel **magnitudes** into one channel (keepdim), as UMX
            does for one-channel models.

    Returns:
        ``(..., nb_channels or 1, nb_bins, nb_frames)``. ``|z|`` is computed as
        ``hypot(re, im)``: the value of complex ``abs``, about twice as fast on the CPU.
    """
    mag = torch.hypot(spec.real, spec.imag)
    if mono:
        mag = mag.mean(dim=-3, keepdim=True)
    return mag


def downmix(audio: Tensor) -> Tensor:
    """Average the channels of ``(..., nb_channels, nb_timesteps)`` into one (keepdim)."""
    return audio.mean(dim=-2, keepdim=True)


def nb_frames(nb_timesteps: int, n_fft: int, n_hop: int, center: bool) -> int:
    """Number of STFT frames that :class:`STFT` gives for ``nb_timesteps`` samples."""
    if center:
        return 1 + nb_timesteps // n_hop
    if nb_timesteps < n_fft:
        return 0
    return 1 + (nb_timesteps - n_fft) // n_hop


def bandwidth_to_max_bin(rate: float, n_fft: int, bandwidth: float) -> int:
    """Number of STFT bins whose centre frequency is at most ``bandwidth`` Hz."""
    nb_bins = n_fft // 2 + 1
    spacing = (rate / 2) / (nb_bins - 1)
    last = int(bandwidth // spacing) if bandwidth < rate / 2 else nb_bins - 1
    # guard against float rounding exactly on a bin edge
    while last + 1 < nb_bins and (last + 1) * spacing <= bandwidth:
        last += 1
    while last > 0 and last * spacing > bandwidth:
        last -= 1
    return min(last + 1, nb_bins)
