"""The causal model as a step graph: one hop of audio and the state in, stems and state out.

:class:`StepGraph` computes one call of :meth:`unmix.realtime.causal.CausalEngine.advance`
with a block of exactly ``n_hop`` samples (one STFT frame), with every piece of state an
explicit real tensor, so that a plugin can run it once per block with no Python:

* ``samples`` ``(C, n_fft − n_hop)``: input not yet framed (zeros at the start);
* ``h``, ``c`` ``(J, nb_layers, 1, H)``: the LSTM state of every target;
* ``A_re_k``, ``A_im_k`` ``(J', F, C, C)`` and ``B_k`` ``(J', F)`` per EM iteration ``k``:
  the running spatial covariances of the causal Wiener filter;
* ``tail`` ``(J', C, n_fft − n_hop)``: the overlap-add sums of the unfinished output.

Call ``k`` returns the input ``n_fft − n_hop`` samples earlier, separated; the first
``(n_fft − n_hop) / n_hop`` calls return the silence before the stream.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..realtime.causal import CausalEngine
from ..realtime.fused import FusedStep
from .spectral import StftFunction, inverse_real_frames
from .wiener import Pair


def _cmul(a: Pair, b: Pair) -> Pair:
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


def _cinv(a: Pair) -> Pair:
    norm = a[0] * a[0] + a[1] * a[1]
    return a[0] / norm, -a[1] / norm


class StepGraph(nn.Module):
    """One causal step; see the module docstring for the state.

    Args:
        engine: the causal engine (unidirectional UMX, causal Wiener settings, channels).
    """

    window: Tensor
    envelope: Tensor

    def __init__(self, engine: CausalEngine) -> None:
        super().__init__()
        self.step = FusedStep(engine.model)
        self.settings = engine.wiener
        self.lam = engine.lam
        self.n_fft, self.n_hop = engine.n_fft, engine.n_hop
        self.mono_model = engine.mono_model
        self.nb_channels = engine.nb_channels
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("envelope", engine.envelope.clone(), persistent=False)

    def state_names(self) -> list[str]:
        """Names of the state tensors, in input (and output) order."""
        em = [f"{n}_{k}" for k in range(self.settings.niter) for n in ("A_re", "A_im", "B")]
        return ["samples", "h", "c", *em, "tail"]

    def forward(self, block: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """``block (C, n_hop)``, the state → ``stems (J', C, n_hop)``, the new state."""
        samples, h, c = state[0], state[1], state[2]
        em, tail = state[3:-1], state[-1]
        frame = torch.cat([samples, block], dim=1)  # (C, n_fft)
        spec: Tensor = StftFunction.apply(frame, self.window, self.n_fft, self.n_hop)  # type: ignore[no-untyped-call]
        xr, xi = spec[:, 0, :, 0], spec[:, 0, :, 1]  # (C, F)
        mag = torch.sqrt(xr * xr + xi * xi)
        if self.mono_model:
            mag = mag.mean(dim=0, keepdim=True)
        V, (h, c) = self.step(mag[None, None], (h, c))  # (J, 1, 1, C_m, F)
        y = self._initial(V[:, 0, 0], (xr, xi))  # each (J', C, F)
        new_em: list[Tensor] = []
        for k in range(self.settings.niter):
            y, new = self._em_step(y, (xr, xi), em[3 * k : 3 * k + 3])
            new_em += new
        nb_out, nb_channels = y[0].shape[0], y[0].shape[1]
        re, im = (part.reshape(nb_out * nb_channels, 1, -1) for part in y)  # (J'·C, 1, F)
        time = inverse_real_frames(re, im, self.n_fft).reshape(nb_out, nb_channels, self.n_fft)
        acc = torch.cat([tail, torch.zeros_like(tail[..., : self.n_hop])], dim=-1)
        acc = acc + time * self.window
        done = acc[..., : self.n_hop] / self.envelope
        return done, frame[:, self.n_hop :], h, c, *new_em, acc[..., self.n_hop :]

    def _initial(self, V: Tensor, mix: Pair) -> Pair:
        """Frame-local estimates from magnitudes ``V (J, C_m, F)`` (as ``initial_estimates``)."""
        xr, xi = mix
        eps = self.settings.eps
        if self.settings.softmask:
            a = V / (eps + V.sum(0, keepdim=True))
            rest = 1.0 - a.sum(0, keepdim=True)
            carrier = (xr, xi)
        else:
            mag = torch.sqrt(xr * xr + xi * xi)
            safe = mag.clamp_min(torch.finfo(mag.dtype).tiny)
            nonzero = mag > 0
            carrier = (torch.where(nonzero, xr / safe, 1.0), torch.where(nonzero, xi / safe, 0.0))
            a, rest = V, mag - V.sum(0, keepdim=True)
        if self.settings.residual:
            C = xr.shape[0]
            a = torch.cat([a.expand(-1, C, -1), rest.expand(1, C, -1)])
        return a * carrier[0], a * carrier[1]

    def _em_step(self, y: Pair, mix: Pair, state: tuple[Tensor, ...]) -> tuple[Pair, list[Tensor]]:
        """One causal EM iteration for one frame; ``y`` each ``(J', C, F)``."""
        A_re, A_im, B = state
        eps, lam = self.settings.eps, self.lam
        yr, yi = y
        v = (yr * yr + yi * yi).mean(dim=1)  # (J', F)
        # y_c conj(y_d): (J', F, C, C)
        ar, ai = yr.transpose(1, 2)[..., :, None], yi.transpose(1, 2)[..., :, None]
        br, bi = yr.transpose(1, 2)[..., None, :], yi.transpose(1, 2)[..., None, :]
        A_re = lam * A_re + (ar * br + ai * bi)
        A_im = lam * A_im + (ai * br - ar * bi)
        B = lam * B + v
        scale = 1.0 / (eps + B)[..., None, None]
        R = (A_re * scale, A_im * scale)  # (J', F, C, C)
        vv = v[..., None, None]
        C = yr.shape[1]
        eye = torch.eye(C, dtype=yr.dtype)
        sigma = (eps**0.5 * eye + (vv * R[0]).sum(0), (vv * R[1]).sum(0))  # (F, C, C)
        x = (mix[0].t(), mix[1].t())  # (F, C)
        z = self._solve(sigma, x)  # (F, C)
        # y_c = v Σ_d R_cd z_d
        Rz = _cmul(R, (z[0][None, :, None, :], z[1][None, :, None, :]))
        out = (
            v[:, None] * Rz[0].sum(-1).transpose(1, 2),
            v[:, None] * Rz[1].sum(-1).transpose(1, 2),
        )
        return out, [A_re, A_im, B]

    @staticmethod
    def _solve(cov: Pair, x: Pair) -> Pair:
        """``cov⁻¹ x`` for complex ``cov (F, C, C)`` and ``x (F, C)``, C = 1 or 2."""
        if cov[0].shape[-1] == 1:
            inv = _cinv((cov[0][..., 0], cov[1][..., 0]))
            return _cmul(x, inv)
        a = (cov[0][:, 0, 0], cov[1][:, 0, 0])
        b = (cov[0][:, 0, 1], cov[1][:, 0, 1])
        c = (cov[0][:, 1, 0], cov[1][:, 1, 0])
        d = (cov[0][:, 1, 1], cov[1][:, 1, 1])
        ad, bc = _cmul(a, d), _cmul(b, c)
        inv_det = _cinv((ad[0] - bc[0], ad[1] - bc[1]))
        x0, x1 = (x[0][:, 0], x[1][:, 0]), (x[0][:, 1], x[1][:, 1])
        dx0, bx1 = _cmul(d, x0), _cmul(b, x1)
        ax1, cx0 = _cmul(a, x1), _cmul(c, x0)
        z0 = _cmul((dx0[0] - bx1[0], dx0[1] - bx1[1]), inv_det)
        z1 = _cmul((ax1[0] - cx0[0], ax1[1] - cx0[1]), inv_det)
        return torch.stack([z0[0], z1[0]], -1), torch.stack([z0[1], z1[1]], -1)
