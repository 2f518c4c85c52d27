"""StreamSeparator: exactness across block sizes, latency, causality, bad blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmix.errors import AudioError, UnmixError
from unmix.filtering import WienerSettings, wiener_sources
from unmix.realtime import CausalWiener, StreamSeparator
from unmix.transforms import ISTFT, STFT, magnitude

from .common import fixed_sizes, music_like, random_sizes, run_stream, tiny_separator

pytestmark = pytest.mark.usefixtures("one_thread")

N = 6000


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
@pytest.mark.parametrize("stream_channels", [1, 2])
def test_same_output_whatever_the_block_sizes(key: str, stream_channels: int) -> None:
    stream = StreamSeparator(tiny_separator(key), nb_channels=stream_channels)
    audio = music_like(stream_channels, N)
    whole = run_stream(stream, audio, [N])
    assert whole.shape == (2, stream_channels, N + stream.latency)
    assert np.abs(whole).max() > 1e-2  # not silence
    for sizes in (fixed_sizes(N, 256), fixed_sizes(N, 1024), fixed_sizes(N, 4096),
                  random_sizes(N, seed=1)):  # fmt: skip
        assert np.abs(run_stream(stream, audio, sizes) - whole).max() <= 1e-5


@pytest.mark.slow
def test_one_sample_blocks() -> None:
    stream = StreamSeparator(tiny_separator("16k-mono"), nb_channels=2)
    audio = music_like(2, 2000)
    whole = run_stream(stream, audio, [2000])
    assert np.abs(run_stream(stream, audio, [1] * 2000) - whole).max() <= 1e-5


def _causal_oracle(separator: torch.nn.Module, audio: np.ndarray) -> np.ndarray:
    """Offline, with the library's own pieces: STFT of the input with n_fft − hop zeros in
    front (center=False), the whole-sequence model, niter-0 filter, overlap-add."""
    cfg = separator.config
    keep = cfg.n_fft - cfg.n_hop
    x = torch.nn.functional.pad(torch.from_numpy(audio), (keep, cfg.n_fft))[None]
    spec = STFT(cfg.n_fft, cfg.n_hop, center=False)(x)
    V = separator.source_magnitudes(magnitude(spec, mono=cfg.nb_channels == 1))
    est = wiener_sources(V[0], spec[0].transpose(-1, -2), WienerSettings(niter=0))
    istft = ISTFT(cfg.n_fft, cfg.n_hop, center=False)
    acc = torch.zeros(est.shape[0], est.shape[1], istft.padded_length(est.shape[2]))
    istft.overlap_add(est, acc, 0)
    y = istft.normalize(acc, est.shape[2], acc.shape[-1])
    return y[..., keep : keep + audio.shape[1]].numpy()


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_equals_the_offline_causal_oracle_shifted_by_latency(key: str) -> None:
    separator = tiny_separator(key, niter=0)
    channels = separator.config.nb_channels
    stream = StreamSeparator(separator)
    audio = music_like(channels, N)
    out = run_stream(stream, audio, random_sizes(N, seed=2))
    assert stream.latency == separator.config.n_fft - 1
    np.testing.assert_array_equal(out[..., : stream.latency], 0)
    with torch.inference_mode():
        expected = _causal_oracle(separator, audio)
    assert np.abs(out[..., stream.latency :] - expected).max() <= 1e-5


@pytest.mark.parametrize("lookahead", [None, 0.1])
def test_impulse_answers_exactly_latency_samples_later(lookahead: float | None) -> None:
    stream = StreamSeparator(tiny_separator("16k-mono", unidirectional=lookahead is None),
                             lookahead=lookahead, chunk=0.05, nb_channels=1)  # fmt: skip
    impulse = np.zeros((1, 5000), np.float32)
    impulse[0, 0] = 1.0
    out = run_stream(stream, impulse, random_sizes(5000, seed=6, largest=700))
    nonzero = np.flatnonzero(np.abs(out).max(axis=(0, 1)) > 0)
    assert nonzero[0] == stream.latency


def _pass_through(separator: torch.nn.Module) -> None:
    """Make the first target's mask exactly 1 (its estimate is then the mixture)."""
    net = separator.model.branch(separator.model.targets[0])
    with torch.no_grad():
        net.output_scale.zero_()
        net.output_mean.fill_(1.0)


@pytest.mark.parametrize("lookahead", [None, 0.1])
def test_a_pass_through_model_delays_by_exactly_latency(lookahead: float | None) -> None:
    separator = tiny_separator("44k-stereo", unidirectional=lookahead is None, niter=0)
    _pass_through(separator)
    # short chunks and context: many windows that start after the beginning
    stream = StreamSeparator(separator, lookahead=lookahead, chunk=0.01, context=0.03)
    audio = music_like(2, 4 * N)
    out = run_stream(stream, audio, random_sizes(4 * N, seed=7))
    delayed = np.pad(audio, ((0, 0), (stream.latency, 0)))
    assert np.abs(out[0] - delayed).max() <= 1e-5


def test_no_output_sample_depends_on_later_input() -> None:
    stream = StreamSeparator(tiny_separator())
    a = music_like(2, N, seed=3)
    b = a.copy()
    b[:, 4000:] = music_like(2, N - 4000, seed=4)  # the future differs from sample 4000 on
    out_a, out_b = run_stream(stream, a, [N]), run_stream(stream, b, [N])
    changed = np.flatnonzero(np.abs(out_a - out_b).max(axis=(0, 1)) > 0)
    # output sample i is final once input sample i has arrived: 4000 is the earliest
    # possible change; with 1024/256 framing the first frame holding sample 4000 starts
    # its output at 4095, where the (periodic Hann) window is 0
    assert changed[0] == 4096


def test_residual_and_niter_run_causally() -> None:
    sep = tiny_separator(niter=2, residual=True)
    stream = StreamSeparator(sep)
    assert stream.output_names == ("vocals", "drums", "residual")
    audio = music_like(2, N)
    whole = run_stream(stream, audio, [N])
    assert np.abs(run_stream(stream, audio, random_sizes(N, seed=5)) - whole).max() <= 1e-5
    # with EM, the estimates add up to the mixture (up to the regulariser)
    total = whole.sum(0)[..., stream.latency :]
    assert np.abs(total - audio).max() < 1e-3


def test_reset_starts_a_new_stream() -> None:
    stream = StreamSeparator(tiny_separator())
    audio = music_like(2, 3000)
    first = stream.process(audio)
    stream.process(music_like(2, 999, seed=9))
    stream.reset()
    np.testing.assert_array_equal(stream.process(audio), first)


def test_tensor_blocks_give_tensors() -> None:
    stream = StreamSeparator(tiny_separator())
    out = stream.process(torch.from_numpy(music_like(2, 700)))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 700)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (np.zeros((3, 100), np.float32), "nb_channels=2"),
        (np.zeros((100,), np.float32), "nb_channels=2"),
        (np.full((2, 100), np.nan, np.float32), "NaN or infinite"),
        (np.full((2, 100), np.inf, np.float32), "NaN or infinite"),
        (np.zeros((2, 0), np.float32), "1.."),
        (np.zeros((2, 100), np.int16), "float32"),
        (np.full((2, 100), 1e12, np.float32), "full scale"),
    ],
)
def test_a_bad_block_is_refused_and_never_poisons_the_state(
    block: np.ndarray, message: str
) -> None:
    stream = StreamSeparator(tiny_separator())
    audio = music_like(2, N)
    expected = run_stream(stream, audio, [N])
    outs = [stream.process(audio[:, :2500])]
    with pytest.raises(AudioError, match=message):
        stream.process(block)
    outs += [stream.process(audio[:, 2500:]), stream.flush()]
    np.testing.assert_array_equal(np.concatenate(outs, -1), expected)


def test_bidirectional_model_needs_lookahead() -> None:
    with pytest.raises(UnmixError, match=r"bidirectional.*--lookahead"):
        StreamSeparator(tiny_separator(unidirectional=False))


def test_other_sample_rate_is_refused() -> None:
    with pytest.raises(UnmixError, match="48000 Hz but the model runs at 44100 Hz"):
        StreamSeparator(tiny_separator(), sample_rate=48000)


@pytest.mark.parametrize("bad", [{"niter": 4}, {"memory": 0.0}, {"memory": float("nan")}])
def test_bad_wiener_settings(bad: dict[str, float]) -> None:
    with pytest.raises(UnmixError):
        CausalWiener(**bad)  # type: ignore[arg-type]


def test_a_non_finite_model_output_is_refused_and_not_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = StreamSeparator(tiny_separator())
    audio = music_like(2, N)
    expected = run_stream(stream, audio, [N])
    outs = [stream.process(audio[:, :3000])]
    advance = stream.engine.advance

    def broken(state: object, block: torch.Tensor) -> tuple[torch.Tensor, object]:
        out, new = advance(state, block)  # type: ignore[arg-type]
        return out * float("nan"), new

    monkeypatch.setattr(stream.engine, "advance", broken)
    with pytest.raises(UnmixError, match="NaN or infinite output"):
        stream.process(audio[:, 3000:])
    monkeypatch.undo()
    outs += [stream.process(audio[:, 3000:]), stream.flush()]
    np.testing.assert_array_equal(np.concatenate(outs, -1), expected)
