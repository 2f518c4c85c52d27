"""End-to-end separation module: audio → STFT → target models → Wiener → ISTFT → stems."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .filtering import wiener_sources
from .transforms import ISTFT, STFT, magnitude


class Separator(nn.Module):
    """Separate a mixture into its targets.

    Args:
        target_models: one network per target, in output order; each maps a magnitude
            ``(S, C, F, N)`` to a magnitude of the same shape. An X-UMX model can be given
            as ``joint_model`` instead.
        config: STFT settings and channel count of the models.
        niter: EM iterations of the Wiener post-filter (Default: 1). With a single target
            and no residual there is nothing to refine: ``niter`` is set to 0, with a warning.
        softmask: initialise the filter with ratio masks.
        residual: add a ``residual`` output (mixture minus the other targets).
        wiener_win_len: frames per independent Wiener window (Default: 300; ``None``: all).
        joint_model: a single network mapping ``(S, C, F, N)`` to ``(S, C, F, N, J)``
            (X-UMX); used instead of ``target_models``.
    """

    def __init__(
        self,
        target_models: Mapping[str, nn.Module] | None,
        config: ModelConfig,
        niter: int = 1,
        softmask: bool = False,
        residual: bool = False,
        wiener_win_len: int | None = 300,
        joint_model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (target_models is None) == (joint_model is None):
            raise ValueError("give either target_models or joint_model")
        if niter < 0:
            raise ValueError(f"niter must be >= 0, got {niter}")
        self.config = config
        self.target_models = nn.ModuleDict(dict(target_models or {}))
        self.joint_model = joint_model
        self.targets: tuple[str, ...] = (
            tuple(self.target_models) if target_models is not None else config.targets
        )
        if len(self.targets) == 1 and not residual and niter > 0:
            warnings.warn(
                "one target without residual: the Wiener EM has nothing to refine, "
                "using niter=0 (add residual=True to refine against the rest of the mix)",
                stacklevel=2,
            )
            niter = 0
        self.niter = niter
        self.softmask = softmask
        self.residual = residual
        self.wiener_win_len = wiener_win_len
        self.stft = STFT(config.n_fft, config.n_hop, center=True)
        self.istft = ISTFT(config.n_fft, config.n_hop, center=True)

    @property
    def sample_rate(self) -> int:
        """Rate the models expect (Hz)."""
        return self.config.sample_rate

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the stacked outputs: the targets, then ``residual`` if enabled."""
        return (*self.targets, "residual") if self.residual else self.targets

    def freeze(self) -> Separator:
        """Disable gradients and switch to evaluation mode."""
        for p in self.parameters():
            p.requires_grad = False
        return self.eval()

    def target_spectrograms(self, X: Tensor) -> Tensor:
        """Model magnitudes for all targets.

        Args:
            X: mixture magnitude ``(S, C_model, F, N)``.

        Returns:
            ``(S, C_model, F, N, J)``.
        """
        if self.joint_model is not None:
            out: Tensor = self.joint_model(X)
            return out
        return torch.stack([m(X) for m in self.target_models.values()], dim=-1)

    def forward(self, audio: Tensor) -> Tensor:
        """Separate.

        Args:
            audio: mixture ``(nb_samples, nb_channels, nb_timesteps)`` at :attr:`sample_rate`;
                one- or two-channel.

        Returns:
            stems ``(nb_samples, nb_outputs, nb_channels, nb_timesteps)``, outputs ordered as
            :attr:`output_names`.
        """
        if audio.ndim != 3:
            raise ValueError(
                f"audio must be (nb_samples, nb_channels, nb_timesteps), got {tuple(audio.shape)}"
            )
        if audio.shape[1] == 1 and self.config.nb_channels == 2:
            # mono into a stereo model: separate the duplicated signal, then downmix the stems
            return self.forward(audio.expand(-1, 2, -1)).mean(dim=2, keepdim=True)
        if audio.shape[1] not in (1, 2):
            raise ValueError(f"audio must have 1 or 2 channels, got {audio.shape[1]}")
        mix_stft = self.stft(audio)  # (S, C, F, N) complex
        V = self.source_magnitudes(magnitude(mix_stft, mono=self.config.nb_channels == 1))
        mix = mix_stft.transpose(-1, -2)  # (S, C, N, F), a view: torch.stft stores bins last
        nb_frames = mix.shape[2]
        out = audio.new_zeros(
            audio.shape[0],
            len(self.output_names),
            audio.shape[1],
            self.istft.padded_length(nb_frames),
        )
        # Wiener-filter and invert one window at a time: only the accumulator (S, J', C, T)
        # and the current window's estimates are held, never all complex estimates at once
        step = max(self.wiener_win_len or nb_frames, 1)
        for s in range(audio.shape[0]):
            for pos in range(0, nb_frames, step):
                estimates = wiener_sources(
                    V[s, :, :, pos : pos + step],
                    mix[s, :, pos : pos + step],
                    self.niter,
                    self.softmask,
                    self.residual,
                )  # (J', C, n, F)
                self.istft.overlap_add(estimates, out[s], pos)
        return self.istft.normalize(out, nb_frames, audio.shape[-1])

    def source_magnitudes(self, X: Tensor) -> Tensor:
        """Model magnitudes for all targets, sources-first for the Wiener stage.

        Args:
            X: mixture magnitude ``(S, C_model, F, N)``.

        Returns:
            ``(S, J, C_model, N, F)``.
        """
        if self.joint_model is not None:
            return self.target_spectrograms(X).permute(0, 4, 1, 3, 2)
        S, C, F, N = X.shape
        nets = list(self.target_models.values())
        V = X.new_empty(S, len(nets), C, N, F)
        workers = min(torch.get_num_threads(), len(nets)) if X.device.type == "cpu" else 1
        if workers < 2:
            for j, net in enumerate(nets):
                V[:, j] = net(X).transpose(-1, -2)  # filled in place: no second copy
            return V
        # On the CPU the networks run side by side, one thread each, instead of one after
        # the other on all threads: the LSTM's thousands of small steps then never wait
        # for each other's threads (on busy cores those waits made it many times slower).
        grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

        def run(net: nn.Module) -> Tensor:
            torch.set_num_threads(1)  # this worker thread only
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                out: Tensor = net(X)
                return out

        threads = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="unmix-model") as pool:
                for j, out in enumerate(pool.map(run, nets)):
                    V[:, j] = out.transpose(-1, -2)
        finally:
            torch.set_num_threads(threads)  # BLAS libraries may keep the count process-wide
        return V

    def to_dict(self, estimates: Tensor) -> dict[str, Tensor]:
        """Map ``(S, J', C, T)`` estimates to ``{name: (S, C, T)}``."""
        return {name: estimates[:, k] for k, name in enumerate(self.output_names)}
