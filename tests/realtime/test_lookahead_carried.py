"""Carried lookahead mode: exactness across block sizes, latency, and its two parts
(the chunked bidirectional LSTM, the grid Wiener filter) against their offline twins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmix.filtering import WienerSettings, wiener_sources
from unmix.realtime import StreamSeparator
from unmix.realtime.carried import CarriedBLSTM
from unmix.realtime.grid_wiener import grid_wiener, initial_grid
from unmix.realtime.lookahead import LookaheadEngine
from unmix.realtime.lookahead_carried import CarriedLookaheadEngine
from unmix.separator import Separator
from unmix.transforms import ISTFT, STFT, magnitude

from .common import (
    fixed_sizes,
    impulse_delay,
    music_like,
    random_sizes,
    run_stream,
    tiny_separator,
)

pytestmark = pytest.mark.usefixtures("one_thread")

N = 6000


def _stream(key: str, channels: int, **kwargs: object) -> StreamSeparator:
    separator = tiny_separator(key, unidirectional=False, **kwargs)  # type: ignore[arg-type]
    return StreamSeparator(separator, lookahead=0.1, chunk=0.02, nb_channels=channels)


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
@pytest.mark.parametrize("stream_channels", [1, 2])
def test_same_output_whatever_the_block_sizes(key: str, stream_channels: int) -> None:
    stream = _stream(key, stream_channels)
    assert isinstance(stream.engine, CarriedLookaheadEngine)
    audio = music_like(stream_channels, N)
    whole = run_stream(stream, audio, [N])
    assert whole.shape == (2, stream_channels, N + stream.latency)
    assert np.abs(whole).max() > 1e-2
    for sizes in (fixed_sizes(N, 1), fixed_sizes(N, 256), fixed_sizes(N, 1024),
                  fixed_sizes(N, 4096), random_sizes(N, seed=1)):  # fmt: skip
        assert np.abs(run_stream(stream, audio, sizes) - whole).max() <= 1e-5


def test_latency_is_chunk_plus_lookahead_in_whole_frames() -> None:
    stream = _stream("44k-stereo", 2)  # n_fft 1024, hop 256
    engine = stream.engine
    assert isinstance(engine, CarriedLookaheadEngine)
    # chunk 882 samples -> 3 hops; lookahead 4410 -> 13 hops + one window
    assert (engine.chunk, engine.lookahead) == (3 * 256, 13 * 256 + 1024)
    assert stream.latency == engine.chunk + engine.lookahead - 1


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_impulse_answers_exactly_latency_samples_later(key: str) -> None:
    stream = _stream(key, 1)
    assert impulse_delay(stream, seed=6, largest=700) == stream.latency


def test_a_pass_through_model_delays_by_exactly_latency() -> None:
    separator = tiny_separator("44k-stereo", unidirectional=False, niter=0)
    net = separator.model.branch(separator.model.targets[0])
    with torch.no_grad():  # the first target's mask is exactly 1
        net.output_scale.zero_()
        net.output_mean.fill_(1.0)
    # a chunk shorter than n_fft − hop: the first chunks have fewer frames
    stream = StreamSeparator(separator, lookahead=0.05, chunk=0.005)
    audio = music_like(2, 4 * N)
    out = run_stream(stream, audio, random_sizes(4 * N, seed=7))
    delayed = np.pad(audio, ((0, 0), (stream.latency, 0)))
    assert np.abs(out[0] - delayed).max() <= 1e-5


def test_no_output_depends_on_input_beyond_the_latency() -> None:
    stream = _stream("44k-stereo", 2)
    a = music_like(2, N, seed=3)
    b = a.copy()
    b[:, 4000:] = music_like(2, N - 4000, seed=4)
    out_a, out_b = run_stream(stream, a, [N]), run_stream(stream, b, [N])
    changed = np.flatnonzero(np.abs(out_a - out_b).max(axis=(0, 1)) > 0)
    assert changed[0] >= 4000  # stream time: nothing is emitted before its input arrived


def test_the_design_follows_model_and_context() -> None:
    bidirectional = tiny_separator(unidirectional=False)
    assert isinstance(StreamSeparator(bidirectional, lookahead=0.1).engine, CarriedLookaheadEngine)
    # an explicit context, a causal model, a lookahead under one window: the windowed engine
    explicit = StreamSeparator(bidirectional, lookahead=0.1, context=0.2)
    causal = StreamSeparator(tiny_separator(), lookahead=0.1)
    short = StreamSeparator(bidirectional, lookahead=0.01, chunk=0.05)
    for stream in (explicit, causal, short):
        assert isinstance(stream.engine, LookaheadEngine)


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_lookahead_to_the_end_is_the_offline_network(key: str) -> None:
    separator = tiny_separator(key, unidirectional=False, seed=2)
    net = CarriedBLSTM(separator.model)
    C = separator.config.nb_channels
    x = torch.rand(40, 1, C, separator.config.nb_bins) * 3
    with torch.inference_mode():
        whole, _ = net(x, 40, net.initial())
        expected = separator.model(x.permute(1, 2, 3, 0))  # (1, C, F, N, J)
        # chunks of 8 frames whose lookahead reaches the end: the same, forward states carried
        states, pieces = net.initial(), []
        for start in range(0, 40, 8):
            y, states = net(x[start:], 8, states)
            pieces.append(y[:, :8])
    expected = expected[0].permute(3, 2, 0, 1)[:, :, None]  # (J, N, 1, C, F)
    assert torch.allclose(whole, expected, atol=1e-5)
    assert torch.allclose(torch.cat(pieces, 1), expected, atol=1e-5)


def test_the_carried_states_see_the_lookahead_from_the_second_layer_on() -> None:
    """Layer 1's forward state at the chunk's end depends on the chunk only; layer 2's also
    on the lookahead (it reads layer 1's backward direction)."""
    separator = tiny_separator(unidirectional=False)  # two LSTM layers
    net = CarriedBLSTM(separator.model)
    x = torch.rand(30, 1, 2, separator.config.nb_bins)
    y = x.clone()
    y[20:] = torch.rand(10, 1, 2, separator.config.nb_bins)  # a different lookahead
    with torch.inference_mode():
        _, sx = net(x, 10, net.initial())
        _, sy = net(y, 10, net.initial())
    for (first_x, second_x), (first_y, second_y) in zip(sx, sy, strict=True):
        assert torch.equal(first_x[0], first_y[0]) and torch.equal(first_x[1], first_y[1])
        assert not torch.equal(second_x[0], second_y[0])


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    "settings",
    [WienerSettings(niter=1, wiener_win_len=12), WienerSettings(niter=2, wiener_win_len=12),
     WienerSettings(niter=1, softmask=True, residual=True, wiener_win_len=12)],
)  # fmt: skip
def test_grid_wiener_equals_the_offline_filter_once_the_window_is_known(
    channels: int, settings: WienerSettings
) -> None:
    """Chunks of 5 frames with lookahead to the end: the offline filter, window by window
    (every EM iteration: the emitted frames' sums are the offline ones)."""
    g = torch.Generator().manual_seed(0)
    N, F, J = 30, 9, 2
    V = torch.rand(J, channels, N, F, generator=g) * 4
    mix = (
        torch.complex(
            torch.randn(channels, N, F, generator=g), torch.randn(channels, N, F, generator=g)
        )
        * 20
    )
    nb_out = J + int(settings.residual)
    state, pieces = initial_grid(settings, nb_out, channels, F), []
    for start in range(0, N, 5):
        y, state = grid_wiener(V[:, :, start:], mix[:, start:], start, 5, settings, state)
        pieces.append(y)
    expected = torch.cat(
        [
            wiener_sources(V[:, :, w : w + 12], mix[:, w : w + 12], settings)
            for w in range(0, N, 12)
        ],
        2,
    )
    got = torch.cat(pieces, 2)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def _one_chunk_oracle(separator: Separator, audio: np.ndarray, nb_frames: int) -> np.ndarray:
    """Offline, with the library's own pieces: ``n_fft/2`` zeros in front, the STFT
    (center=False), the whole-sequence model, the offline Wiener filter window by window,
    overlap-add of the first ``nb_frames`` frames."""
    cfg = separator.config
    o = cfg.n_fft // 2
    x = torch.nn.functional.pad(torch.from_numpy(audio), (o, 4 * cfg.n_fft))[None]
    spec = STFT(cfg.n_fft, cfg.n_hop, center=False)(x)  # (1, C, F, N)
    V = separator.source_magnitudes(magnitude(spec, mono=cfg.nb_channels == 1))[0]
    mix = spec[0].transpose(-1, -2)
    win = separator.wiener.wiener_win_len
    assert win is not None
    est = torch.cat(
        [wiener_sources(V[:, :, w : w + win], mix[:, w : w + win], separator.wiener)
         for w in range(0, nb_frames, win)], 2,
    )[:, :, :nb_frames]  # fmt: skip
    istft = ISTFT(cfg.n_fft, cfg.n_hop, center=False)
    acc = torch.zeros(est.shape[0], est.shape[1], istft.padded_length(nb_frames))
    istft.overlap_add(est, acc, 0)
    y = istft.normalize(acc, nb_frames, acc.shape[-1])
    return y[..., o : o + audio.shape[1]].numpy()


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_a_stream_within_one_chunk_is_the_offline_separation(key: str) -> None:
    """One chunk covers the whole input (and its lookahead the rest of the STFT window of
    frames): the stream is the offline pipeline on those frames, Wiener grid included."""
    separator = tiny_separator(key, unidirectional=False, residual=True)
    separator.wiener = WienerSettings(niter=1, residual=True, wiener_win_len=20)
    stream = StreamSeparator(separator, lookahead=0.1, chunk=0.3)
    engine = stream.engine
    assert isinstance(engine, CarriedLookaheadEngine) and engine.b > 20  # two Wiener windows
    n = engine.chunk - separator.config.n_fft  # all of it in the first chunk
    audio = music_like(separator.config.nb_channels, n)
    out = run_stream(stream, audio, random_sizes(n, seed=8, largest=n // 3))
    with torch.inference_mode():
        expected = _one_chunk_oracle(separator, audio, engine.b)
    assert np.abs(out[..., stream.latency : stream.latency + n] - expected).max() <= 1e-5
