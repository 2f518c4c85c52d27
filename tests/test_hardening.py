"""The bad-input corpus (issue 8): every case ends in a one-line error and a non-zero exit, or
in a correct result; never a traceback for a user error, never a partial output file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.hub.loading import save_model
from unmix.models.umx import UMX, OpenUnmix

from . import corpus

TINY = ModelConfig(targets=("vocals", "other"), n_fft=512, n_hop=128, hidden_size=16, max_bin=200)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    save_model(folder, TINY, UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets}))
    return folder


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line.lower()]


def leftovers(folder: Path) -> list[str]:
    """Temporary or hidden files that a finished run must not leave behind."""
    if not folder.exists():
        return []
    return [
        str(p)
        for p in folder.rglob("*")
        if (p.name.startswith(".") and p.name != ".unmix.json") or ".part" in p.name
    ]  # .unmix.json: the settings record of the outputs (docs/separation.md)


#: the layout before OUT/<model>/ was added, so that paths below stay short
OLD_LAYOUT = ("--filename", "{track}/{stem}.{ext}")


def separate(inp: Path, out: Path, model: Path, capsys, *extra: str) -> tuple[int, str]:
    return run_cli(
        ["separate", str(inp), "--model", str(model), "--out-dir", str(out), "-q", *OLD_LAYOUT,
         *extra], capsys,
    )  # fmt: skip


# (case name, maker, expected: "error" with a message fragment, or "ok")
ERROR_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("empty file", corpus.make_empty_file, "empty.wav"),
    ("text named .wav", corpus.make_text_as_wav, "notes.wav"),
    ("directory named .wav", corpus.make_dir_named_wav, "folder.wav"),
    ("NaN and Inf samples", corpus.make_non_finite, "NaN"),
    ("6 channels", corpus.make_six_channels, "channels"),
    ("missing file", lambda d: d / "does-not-exist.wav", "does-not-exist.wav"),
]


@pytest.mark.parametrize(
    ("maker", "fragment"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_separate_bad_audio_fails_cleanly(tmp_path, tiny_model, capsys, maker, fragment):
    inp = maker(tmp_path)
    out = tmp_path / "out"
    code, err = separate(inp, out, tiny_model, capsys)
    assert code != 0
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert fragment in lines[0]
    assert not any(out.rglob("*.wav")) if out.exists() else True
    assert leftovers(out) == []


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_separate_truncated_files_error_or_full_result(tmp_path, tiny_model, capsys, fmt):
    inp = corpus.make_truncated(tmp_path, fmt)
    out = tmp_path / "out"
    code, err = separate(inp, out, tiny_model, capsys)
    assert leftovers(out) == []
    if code != 0:
        assert len(error_lines(err)) == 1 and inp.name in err
        assert not list(out.rglob("*.wav"))
    else:
        stems = sorted((out / "truncated").glob("*.wav"))
        assert [p.stem for p in stems] == ["other", "vocals"]
        lengths = {sf.info(p).frames for p in stems}
        assert len(lengths) == 1 and lengths.pop() > 0


@pytest.mark.parametrize("case", ["one sample", "8 kHz", "192 kHz", "unicode name"])
def test_separate_unusual_but_valid_audio(tmp_path, tiny_model, capsys, case):
    maker = {
        "one sample": corpus.make_one_sample,
        "8 kHz": lambda d: corpus.make_rate(d, 8000),
        "192 kHz": lambda d: corpus.make_rate(d, 192000),
        "unicode name": corpus.make_unicode_name,
    }[case]
    inp = maker(tmp_path)
    out = tmp_path / "out"
    code, err = separate(inp, out, tiny_model, capsys)
    assert code == 0, err
    mix, rate = sf.read(inp, dtype="float32", always_2d=True)
    folder = out / inp.stem
    total = np.zeros_like(mix)
    for target in TINY.targets:
        stem, stem_rate = sf.read(folder / f"{target}.wav", dtype="float32", always_2d=True)
        assert stem_rate == rate and stem.shape == mix.shape
        total += stem
    if mix.shape[0] > 4096:  # stems add up to the input (Wiener regulariser aside)
        snr = 10 * np.log10(np.sum(mix**2) / np.sum((total - mix) ** 2))
        assert snr > 30
    assert leftovers(out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file(tmp_path, tiny_model, capsys):
    inp = corpus.make_unreadable(tmp_path)
    code, err = separate(inp, tmp_path / "out", tiny_model, capsys)
    assert code != 0 and "permission" in err.lower()


def test_unwritable_output_dir(tmp_path, tiny_model, capsys):
    inp = corpus.make_wav(tmp_path)
    out = tmp_path / "file-not-dir"
    out.write_text("I am a file")
    code, err = separate(inp, out, tiny_model, capsys)
    assert code != 0 and len(error_lines(err)) == 1 and str(out) in err


def _weights_case(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    if name == "wrong shapes":
        other = TINY.with_(hidden_size=24)
        save_model(folder, TINY, UMX({t: OpenUnmix.from_config(other) for t in TINY.targets}))
    elif name == "wrong architecture":
        save_model(folder, TINY, UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets}))
        cfg = json.loads((folder / "config.json").read_text())
        cfg["arch"] = "xumx"
        (folder / "config.json").write_text(json.dumps(cfg))
    elif name == "truncated safetensors":
        save_model(folder, TINY, UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets}))
        f = folder / "vocals.safetensors"
        f.write_bytes(f.read_bytes()[:500])
    elif name == "config with wrong types":
        save_model(folder, TINY, UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets}))
        cfg = json.loads((folder / "config.json").read_text())
        cfg["n_fft"] = "512"
        (folder / "config.json").write_text(json.dumps(cfg))
    elif name == "config not json":
        save_model(folder, TINY, UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets}))
        (folder / "config.json").write_text("{nope")
    return folder


@pytest.mark.parametrize(
    "name",
    [
        "wrong shapes",
        "wrong architecture",
        "truncated safetensors",
        "config with wrong types",
        "config not json",
    ],
)
def test_bad_weights_fail_cleanly(tmp_path, capsys, name):
    model = _weights_case(tmp_path, name)
    inp = corpus.make_wav(tmp_path)
    out = tmp_path / "out"
    code, err = separate(inp, out, model, capsys)
    assert code != 0
    assert len(error_lines(err)) == 1, err
    assert not out.exists() or not any(out.rglob("*.wav"))


def test_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    model = corpus.make_pickle_bomb(tmp_path, marker)
    inp = corpus.make_wav(tmp_path)
    code, err = separate(inp, tmp_path / "out", model, capsys)
    assert code != 0 and "refusing to load" in err
    assert not marker.exists()


# ---------------------------------------------------------------- long files, signals, races

SPEECH_RATE = ModelConfig(
    targets=("vocals", "other"),
    sample_rate=8000,
    n_fft=256,
    n_hop=64,
    hidden_size=8,
    max_bin=64,
    nb_channels=1,
)


@pytest.fixture(scope="module")
def tiny_8k_model(tmp_path_factory) -> Path:
    """A tiny 8 kHz mono model: hours of audio separate in seconds, without resampling."""
    folder = tmp_path_factory.mktemp("tiny-8k")
    torch.manual_seed(1)
    save_model(
        folder,
        SPEECH_RATE,
        UMX({t: OpenUnmix.from_config(SPEECH_RATE) for t in SPEECH_RATE.targets}),
    )
    return folder


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unmix", *args]


def test_three_hour_file_streams_in_bounded_memory(tmp_path, tiny_8k_model):
    """3 h of audio: 86.4 M samples; held in memory input + 2 stems would need > 1 GB."""
    inp = corpus.make_long_silence(tmp_path, hours=3.0, rate=8000)
    out = tmp_path / "out"
    script = (
        "import resource, subprocess, sys\n"
        f"r = subprocess.run({_cli('separate', str(inp), '--model', str(tiny_8k_model), '--out-dir', str(out), '-q', '--format', 'flac', *OLD_LAYOUT)!r}, capture_output=True)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(r.stderr.decode())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    code, peak_kib = map(int, done.stdout.split())
    assert code == 0, done.stderr
    assert peak_kib < 700 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    for target in SPEECH_RATE.targets:
        info = sf.info(out / "long-silence" / f"{target}.flac")
        assert info.frames == 3 * 3600 * 8000 and info.samplerate == 8000


def test_ctrl_c_leaves_only_complete_stems(tmp_path, tiny_8k_model):
    inp = corpus.make_long_silence(tmp_path, hours=1.0, rate=8000)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _cli(
            "separate",
            str(inp),
            "--model",
            str(tiny_8k_model),
            "--out-dir",
            str(out),
            "-q",
            *OLD_LAYOUT,
        ),
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not list(out.rglob("*.part")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "separation ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert leftovers(out) == []
    assert not list(out.rglob("*.wav"))


def test_two_runs_on_one_output_folder_do_not_corrupt_it(tmp_path, tiny_8k_model):
    inp = corpus.make_wav(tmp_path, "song.wav", seconds=20.0, rate=8000, channels=1)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = _cli(
        "separate",
        str(inp),
        "--model",
        str(tiny_8k_model),
        "--out-dir",
        str(out),
        "-q",
        "--force",
        *OLD_LAYOUT,
    )
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    mix, _ = sf.read(inp, dtype="float32")
    for target in SPEECH_RATE.targets:
        stem, rate = sf.read(out / "song" / f"{target}.wav", dtype="float32")
        assert rate == 8000 and stem.shape == mix.shape and np.isfinite(stem).all()
    assert leftovers(out) == []


def test_unreadable_file_as_any_user(tmp_path, tiny_model, capsys, monkeypatch):
    """Root reads everything, so simulate the operating system's refusal at the open call."""
    import av

    inp = corpus.make_wav(tmp_path, "locked.wav")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(inp))

    monkeypatch.setattr(av, "open", refuse)
    code, err = separate(inp, tmp_path / "out", tiny_model, capsys)
    assert code != 0 and len(error_lines(err)) == 1
    assert "permission" in err.lower() and "locked.wav" in err


# ---------------------------------------------------------------- the other commands


def _stereo_track(folder: Path, name: str, lengths: dict[str, int], channels: int = 2) -> None:
    track = folder / name
    track.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for source, n in lengths.items():
        sf.write(
            track / f"{source}.wav",
            (0.1 * rng.standard_normal((n, channels))).astype(np.float32),
            44100,
        )


def test_evaluate_bad_inputs(tmp_path, capsys, caplog):
    root = tmp_path / "refs"
    full = dict.fromkeys(["mixture", "vocals", "drums", "bass", "other"], 44100)
    _stereo_track(root / "test", "Song", full)
    code, err = run_cli(["evaluate", str(tmp_path / "nothing"), "--root", str(root)], capsys)
    assert code != 0 and len(error_lines(err)) == 1
    _stereo_track(tmp_path / "est", "Song", {"vocals": 40000, "drums": 44100})
    code, err = run_cli(
        ["evaluate", str(tmp_path / "est"), "--root", str(tmp_path / "nope")], capsys
    )
    assert code != 0 and len(error_lines(err)) == 1 and "MUSDB18" in err
    # a short estimate is zero-padded as museval does, and said so
    code, err = run_cli(
        [
            "evaluate",
            str(tmp_path / "est"),
            "--root",
            str(root),
            "--out-dir",
            str(tmp_path / "scores"),
            "--no-plot",
        ],
        capsys,
    )
    assert code == 0 and "zero-padded" in err + caplog.text
    # a wrong sample rate is refused, naming the file
    sf.write(tmp_path / "est" / "Song" / "drums.wav", np.zeros((22050, 2), np.float32), 22050)
    code, err = run_cli(
        [
            "evaluate",
            str(tmp_path / "est"),
            "--root",
            str(root),
            "--out-dir",
            str(tmp_path / "scores2"),
            "--no-plot",
        ],
        capsys,
    )
    assert code != 0 and len(error_lines(err)) == 1 and "drums.wav" in err
    assert not (tmp_path / "scores2").exists()
    assert leftovers(tmp_path / "scores") == []


def test_train_bad_inputs(tmp_path, capsys):
    code, err = run_cli(
        ["train", "--root", str(tmp_path / "missing"), "--output", str(tmp_path / "o")], capsys
    )
    assert code != 0 and len(error_lines(err)) == 1 and "MUSDB18" in err
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    code, err = run_cli(["train", "--root", str(empty), "--output", str(tmp_path / "o")], capsys)
    assert code != 0 and len(error_lines(err)) == 1
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"hidden_size": "big"}))
    code, err = run_cli(["train", "--config", str(config), "--root", str(empty)], capsys)
    assert code != 0 and len(error_lines(err)) == 1 and "hidden" in err


def test_convert_bad_inputs(tmp_path, capsys):
    text = tmp_path / "model.h5"
    text.write_text("not hdf5")
    code, err = run_cli(["convert", str(text), str(tmp_path / "dest")], capsys)
    assert code != 0 and len(error_lines(err)) == 1
    assert not (tmp_path / "dest").exists()
    bogus_zip = tmp_path / "weights.zip"
    bogus_zip.write_bytes(b"PK\x03\x04 truncated")
    code, err = run_cli(["convert", str(bogus_zip), str(tmp_path / "dest")], capsys)
    assert code != 0 and len(error_lines(err)) == 1
    assert not (tmp_path / "dest").exists()
