"""Training data: adapters, bad input, cache, reproducible balanced sampling, augmentation,
input statistics and the training settings."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.data import DataOptions, ExcerptDataset, ExcerptSampler, Song, augment, build
from unmix.data.cache import decode
from unmix.errors import UnmixError
from unmix.tracks import SOURCES, VALIDATION_TRACKS
from unmix.train.config import TrainConfig, merge_resumed
from unmix.train.flags import add_arguments, resolve
from unmix.train.stats import input_statistics

RATE = 8000


def write_track(root: Path, name: str, length: int = RATE, channels: int = 2, **over: int) -> Path:
    """MUSDB18-HQ style folder ``root/train/<name>/<source>.wav`` with random audio.

    ``over`` maps a source to another length (``0``: leave the file out)."""
    folder = root / "train" / name
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    for source in ("mixture", *SOURCES):
        n = over.get(source, length)
        if n:
            data = rng.uniform(-0.3, 0.3, (n, channels)).astype(np.float32)
            sf.write(folder / f"{source}.wav", data, RATE, subtype="FLOAT")
    return folder


def options(root: Path, **kw: object) -> DataOptions:
    base: dict[str, object] = dict(root=root, targets=("vocals",), is_wav=True, rate=RATE)
    base.update(kw)
    return DataOptions(**base)  # type: ignore[arg-type]


@pytest.fixture()
def wav_root(tmp_path: Path) -> Path:
    for i in range(3):
        write_track(tmp_path, f"Song {i}")
    write_track(tmp_path, VALIDATION_TRACKS[0])
    return tmp_path


def test_musdb_wav_layout_uses_the_fixed_validation_split(wav_root: Path) -> None:
    data = build("musdb", options(wav_root))
    assert [s.name for s in data.valid] == [VALIDATION_TRACKS[0]]
    assert sorted(s.name for s in data.train) == ["Song 0", "Song 1", "Song 2"]
    song = data.train[0]
    assert set(song.sources) == set(SOURCES) and song.mixture is not None
    assert song.sources["vocals"].shape == (2, RATE)


def test_missing_root_says_how_to_get_musdb(tmp_path: Path) -> None:
    with pytest.raises(UnmixError, match=r"zenodo.*nothing is downloaded"):
        build("musdb", options(tmp_path / "nope"))


def test_empty_root_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(UnmixError, match="no tracks found"):
        build("musdb", options(tmp_path))


def test_stems_instead_of_wav_suggests_the_flag(wav_root: Path) -> None:
    with pytest.raises(UnmixError, match="add --is-wav"):
        build("musdb", options(wav_root, is_wav=False))


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ({"bass": 0}, "has no 'bass' source"),
        ({"drums": RATE // 2}, "different lengths"),
    ],
)
def test_bad_track_is_skipped_with_a_warning(
    wav_root: Path, caplog: pytest.LogCaptureFixture, problem: dict[str, int], message: str
) -> None:
    write_track(wav_root, "Broken", **problem)
    with caplog.at_level(logging.WARNING):
        data = build("musdb", options(wav_root))
    assert "Broken" not in [s.name for s in data.train]
    assert len(data.train) == 3
    assert any("Broken" in r.message and message in r.message for r in caplog.records)


def test_small_length_difference_is_trimmed(wav_root: Path) -> None:
    write_track(wav_root, "Padded", drums=RATE + 100)
    data = build("musdb", options(wav_root))
    song = next(s for s in data.train if s.name == "Padded")
    assert all(x.shape[-1] == RATE for x in song.sources.values())


def test_mono_file_in_stereo_training_is_skipped(
    wav_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_track(wav_root, "Mono", channels=1)
    with caplog.at_level(logging.WARNING):
        data = build("musdb", options(wav_root))
    assert "Mono" not in [s.name for s in data.train]
    assert any("mono but training is stereo" in r.message for r in caplog.records)
    mono = build("musdb", options(wav_root, nb_channels=1))
    song = next(s for s in mono.train if s.name == "Mono")
    assert song.sources["vocals"].shape == (2, RATE)  # duplicated: same mono magnitude
    np.testing.assert_array_equal(song.sources["vocals"][0], song.sources["vocals"][1])


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    write_track(tmp_path, "A", bass=0)
    write_track(tmp_path, VALIDATION_TRACKS[0])
    with pytest.raises(UnmixError, match="none of the 1 tracks is usable"):
        build("musdb", options(tmp_path))


def test_songs_shorter_than_an_excerpt_are_skipped(wav_root: Path) -> None:
    write_track(wav_root, "Short", length=RATE // 4)
    data = build("musdb", options(wav_root, min_length=RATE // 2))
    assert "Short" not in [s.name for s in data.train]


def test_aligned_layout(tmp_path: Path) -> None:
    for split in ("train", "valid"):
        for i in range(2):
            folder = tmp_path / split / f"t{i}"
            folder.mkdir(parents=True)
            for name in ("mix", "voice"):
                sf.write(folder / f"{name}.wav", np.full((RATE, 2), 0.1), RATE)
    opts = options(tmp_path, targets=("voice",), input_file="mix.wav", output_file="voice.wav")
    data = build("aligned", opts)
    assert data.use_mixture and not data.random_mix and data.sources == ("voice",)
    assert len(data.train) == 2 and len(data.valid) == 2
    with pytest.raises(UnmixError, match="--output-file"):
        build("aligned", options(tmp_path, targets=("vocals",), output_file="voice.wav"))


def test_sourcefolder_layout(tmp_path: Path) -> None:
    for split in ("train", "valid"):
        for k, source in enumerate(("speech", "noise")):
            folder = tmp_path / split / source
            folder.mkdir(parents=True)
            for i in range(k + 1):
                sf.write(folder / f"{i}.wav", np.full((RATE, 2), 0.1 * (k + 1)), RATE)
    opts = options(tmp_path, targets=("speech",), sources=("speech", "noise"))
    data = build("sourcefolder", opts)
    assert data.pools == {"speech": [0], "noise": [1, 2]}
    assert len(data.valid) == 2 and set(data.valid[0].sources) == {"speech", "noise"}
    sampler = ExcerptSampler([RATE] * 3, data.sources, RATE // 2, 4, pools=data.pools)
    for draws in sampler.epoch(0):
        assert draws["speech"].song == 0 and draws["noise"].song in (1, 2)


def test_decoded_cache_round_trip(tmp_path: Path, stem_track: Path) -> None:
    first, rate = decode(stem_track, 4, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1 and rate == 44100
    again, _ = decode(stem_track, 4, tmp_path)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    direct, _ = decode(stem_track, 4, None)
    np.testing.assert_array_equal(direct, np.asarray(again))


def test_sampler_is_balanced_reproducible_and_splits_ranks() -> None:
    lengths = [1000, 2000, 1500]
    kwargs = dict(lengths=lengths, sources=SOURCES, seq_len=500, samples_per_track=4, seed=7)
    sampler = ExcerptSampler(**kwargs)  # type: ignore[arg-type]
    plan = sampler.epoch(3)
    assert plan == ExcerptSampler(**kwargs).epoch(3)  # type: ignore[arg-type]
    assert plan != sampler.epoch(4)
    assert len(plan) == 12
    for source in SOURCES:  # every song exactly samples_per_track times, per source
        counts = np.bincount([d[source].song for d in plan], minlength=3)
        assert counts.tolist() == [4, 4, 4]
    for draws in plan:
        for d in draws.values():
            assert 0 <= d.start <= lengths[d.song] - 500
            assert augment.GAIN_RANGE[0] <= d.aug.gain < augment.GAIN_RANGE[1]
    # random mixing: sources of one excerpt come from different songs somewhere
    assert any(len({d.song for d in draws.values()}) > 1 for draws in plan)
    ranks = [ExcerptSampler(**kwargs, rank=r, world_size=3).epoch(3) for r in range(3)]  # type: ignore[arg-type]
    assert sorted(repr(d) for r in ranks for d in r) == sorted(map(repr, plan))


def test_no_random_mix_keeps_one_song_and_start() -> None:
    sampler = ExcerptSampler([900, 800], SOURCES, 300, 2, random_mix=False)
    for draws in sampler.epoch(0):
        assert len({(d.song, d.start) for d in draws.values()}) == 1


def test_excerpt_mix_is_the_sum_of_augmented_sources() -> None:
    rng = np.random.default_rng(0)
    songs = [
        Song(f"s{i}", {s: rng.standard_normal((2, 4000)).astype(np.float32) for s in SOURCES})
        for i in range(2)
    ]
    sampler = ExcerptSampler([4000, 4000], SOURCES, 1000, 3, seed=1)
    dataset = ExcerptDataset(songs, sampler, ("vocals", "bass"), epoch=0)
    mix, targets = dataset[2]
    assert mix.shape == (2, 1000) and targets.shape == (2, 2, 1000)
    draws = sampler.epoch(0)[2]
    parts = {}
    for s, d in draws.items():
        x = songs[d.song].sources[s][:, d.start : d.start + 1000] * d.aug.gain
        parts[s] = x[::-1] if d.aug.swap else x
    torch.testing.assert_close(mix, torch.from_numpy(sum(parts.values())), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(targets[1], torch.from_numpy(parts["bass"].copy()))


def test_augmentations() -> None:
    x = np.stack([np.ones(4), 2 * np.ones(4)]).astype(np.float32)
    out = augment.apply(x, augment.Augment(gain=0.5, swap=True))
    np.testing.assert_array_equal(out, np.stack([np.ones(4), 0.5 * np.ones(4)]))
    with pytest.raises(UnmixError, match="unknown source augmentation"):
        augment.check_names(["gain", "reverb"])


def test_input_statistics_match_numpy() -> None:
    rng = np.random.default_rng(3)
    mixes = [rng.standard_normal((2, 3000)).astype(np.float32) for _ in range(2)]
    mixes[0][:, :] *= np.linspace(0, 1, 3000, dtype=np.float32)
    mean, std = input_statistics(mixes, 512, 128)
    window = np.hanning(513)[:-1]  # periodic Hann
    frames = []
    for m in mixes:
        for start in range(0, 3000 - 512 + 1, 128):
            spec = np.abs(np.fft.rfft(m[:, start : start + 512] * window, axis=-1))
            frames.append(spec.mean(0))
    ref = np.array(frames)
    np.testing.assert_allclose(mean.numpy(), ref.mean(0), rtol=1e-4, atol=1e-6)
    ref_std = np.maximum(ref.std(0), 1e-4 * ref.std(0).max())
    np.testing.assert_allclose(std.numpy(), ref_std, rtol=1e-3, atol=1e-6)


def parse(*argv: str) -> tuple[TrainConfig, set[str]]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve(parser.parse_args(list(argv)))


def test_settings_defaults_follow_the_seed() -> None:
    s, given = parse()
    assert given == set()
    expected = dict(
        root=None, source=("vocals",), output="./open-unmix", epochs=1000, batch_size=16,
        patience=140, seq_dur=6.0, unidirectional=False, hidden_size=512, n_fft=4096, n_hop=1024,
        lr=0.001, lr_decay_patience=80, lr_decay_gamma=0.3, weight_decay=1e-5, bandwidth=16000,
        nb_channels=2, nb_workers=0, seed=42, is_wav=False, samples_per_track=64,
        source_augmentations=("gain", "channelswap"),
    )  # fmt: skip
    assert {k: s.flat()[k] for k in expected} == expected
    assert parse("--context", "cudnn")[0].device_name == "cuda"
    assert parse("--context", "cpu")[0].device_name == "cpu"
    assert parse("--target", "drums", "bass")[0].targets == ("drums", "bass")
    assert parse("--source", "all")[0].targets == SOURCES


def test_config_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('hidden-size = 64\nsource = ["bass"]\nlr = 1\n')
    s, given = parse("--config", str(path), "--lr", "0.01")
    assert (s.model.hidden_size, s.model.source, s.optim.lr) == (64, ("bass",), 0.01)
    assert given == {"lr"}
    (tmp_path / "bad.yaml").write_text("hiden_size: 3\n")
    with pytest.raises(UnmixError, match="unknown setting 'hiden_size'"):
        parse("--config", str(tmp_path / "bad.yaml"))
    (tmp_path / "typed.json").write_text('{"epochs": "ten"}')
    with pytest.raises(UnmixError, match="wrong type"):
        parse("--config", str(tmp_path / "typed.json"))


def test_resume_refuses_changed_settings() -> None:
    saved = TrainConfig.from_dict({"hidden_size": 64, "epochs": 5})
    now = TrainConfig.from_dict({"hidden_size": 32, "epochs": 9, "resume": True})
    assert merge_resumed(saved, now, {"epochs", "resume"}).optim.epochs == 9
    with pytest.raises(UnmixError, match="hidden_size"):
        merge_resumed(saved, now, {"hidden_size"})
