"""FusedStep (all branches batched) equals the branches' own forward and step."""

from __future__ import annotations

import pytest
import torch

from unmix.realtime.fused import FusedStep

from .common import tiny_separator


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_fused_step_equals_the_model(key: str) -> None:
    model = tiny_separator(key).model
    fused = FusedStep(model)
    C = model.branch("vocals").nb_channels
    x = torch.rand(1, C, model.branch("vocals").nb_output_bins, 40)  # (S, C, F, N)
    with torch.inference_mode():
        offline = model(x).permute(4, 3, 0, 1, 2)  # (J, N, S, C, F)
        frames = x.permute(3, 0, 1, 2)  # (N, S, C, F)
        state = fused.initial_state()
        pieces = []
        for chunk in frames.split([1, 7, 13, 19]):
            y, state = fused(chunk, state)
            pieces.append(y)
        stepped, _ = model.step(frames, [None, None])
    torch.testing.assert_close(torch.cat(pieces, 1), offline, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stepped, offline, rtol=1e-5, atol=1e-5)


def test_step_refuses_a_bidirectional_network() -> None:
    net = tiny_separator(unidirectional=False).model.branch("vocals")
    with pytest.raises(ValueError, match="unidirectional"):
        net.step(torch.rand(3, 1, 2, 513), None)
