"""``unmix separate`` end to end on real clips converted to several formats, rates and
channel counts; bad inputs; the Python API on files and arrays."""

from __future__ import annotations

import os
import re
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from unmix import audio as audio_io
from unmix.api import separate, separate_array
from unmix.cli import build_parser, main
from unmix.config import CONFIGS
from unmix.hub.loading import load_separator, save_model
from unmix.models.umx import UMX, OpenUnmix

from ..helpers import randomize

TARGETS = ("vocals", "drums", "bass", "other")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    config = CONFIGS["umxhq"].with_(hidden_size=16)
    models = {}
    for k, target in enumerate(config.targets):
        models[target] = OpenUnmix.from_config(config)
        randomize(models[target], 40 + k)
    return save_model(tmp_path_factory.mktemp("tiny") / "tiny", config, UMX(models))  # OUT/tiny/


@pytest.fixture(scope="module")
def excerpt(clip: Path) -> tuple[np.ndarray, int]:
    audio, rate = audio_io.read(clip, duration=3.0)
    return audio, rate


def _write_pyav(path: Path, audio: np.ndarray, rate: int, codec: str) -> None:
    """Encode ``(C, T)`` float audio with PyAV (for formats soundfile does not write)."""
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), "fltp", layout)
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, excerpt, stem_track) -> Path:
    """A folder of conversions of a real clip, with a sub-folder and a non-audio file."""
    audio, rate = excerpt
    root = tmp_path_factory.mktemp("inputs")
    sf.write(root / "a48k.wav", audio_io.resample(audio, rate, 48000).T, 48000, subtype="FLOAT")
    sf.write(root / "b_mono.flac", audio[:1].T, rate, subtype="PCM_24")
    sf.write(root / "c22k.mp3", audio_io.resample(audio, rate, 22050).T, 22050)
    sf.write(root / "d32k.ogg", audio_io.resample(audio, rate, 32000).T, 32000)
    _write_pyav(root / "e.m4a", audio, rate, "aac")
    (root / "sub").mkdir()
    (root / "sub" / "f.stem.mp4").symlink_to(stem_track)
    (root / "notes.txt").write_text("not audio")
    return root


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["separate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_of_formats_rates_and_channels(capsys, tmp_path, model_dir, inputs):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(
        capsys,
        str(inputs),
        "--model",
        str(model_dir),
        "--out-dir",
        str(out_dir),
        "--residual",
        "-q",
    )
    assert code == 0, err
    assert err == ""
    expected = {
        "a48k.wav": "a48k",
        "b_mono.flac": "b_mono",
        "c22k.mp3": "c22k",
        "d32k.ogg": "d32k",
        "e.m4a": "e",
        "sub/f.stem.mp4": "sub/f",
    }
    assert len(out.strip().splitlines()) == len(expected)
    out_dir = out_dir / "tiny"  # OUT/<model>/<track>/<stem>.wav
    for source, folder in expected.items():
        mix, rate = audio_io.read(inputs / source)  # the mixture stream for .stem.mp4
        names = sorted(p.name for p in (out_dir / folder).iterdir() if p.suffix == ".wav")
        assert names == sorted(f"{t}.wav" for t in (*TARGETS, "residual")), source
        total = np.zeros_like(mix)
        for target in (*TARGETS, "residual"):
            stem, stem_rate = sf.read(
                out_dir / folder / f"{target}.wav", dtype="float32", always_2d=True
            )
            assert stem_rate == rate, source
            assert stem.T.shape == mix.shape, source  # channels and length kept exactly
            total += stem.T
        np.testing.assert_allclose(total, mix, atol=1e-5, err_msg=source)
    assert not (out_dir / "notes").exists()


def test_formats_part_of_a_file_and_segments(capsys, tmp_path, model_dir, inputs):
    source = inputs / "a48k.wav"
    common = ["--model", str(model_dir), "--start", "0.5", "--duration", "2.25", "-q"]
    common += ["--segment", "1.2", "--overlap", "0.4", "--wiener-win-len", "16"]  # 3 segments
    for fmt, ext in [("flac", ".flac"), ("mp3", ".mp3")]:
        code, _, err = run_cli(
            capsys, str(source), "--out-dir", str(tmp_path / fmt), "--format", fmt, *common
        )
        assert code == 0, err
        for target in TARGETS:
            data, rate = audio_io.read(tmp_path / fmt / "tiny" / "a48k" / f"{target}{ext}")
            assert rate == 48000 and data.shape == (2, 108000)
    code, _, err = run_cli(
        capsys, str(source), "--out-dir", str(tmp_path / "st"), "--format", "stems", *common
    )
    assert code == 0, err
    stem_file = tmp_path / "st" / "tiny" / "a48k.stem.mp4"
    assert audio_io.info(stem_file).nb_streams == 5
    with av.open(str(stem_file)) as container:
        titles = [
            s.metadata.get("title") or s.metadata.get("handler_name")
            for s in container.streams.audio
        ]
    assert titles == ["mixture", *TARGETS]
    mixture, rate = audio_io.read(stem_file, stream=0)
    assert rate == 48000 and 108000 <= mixture.shape[1] < 108000 + 1024


def test_existing_outputs_are_skipped_unless_forced(capsys, tmp_path, model_dir, inputs):
    args = [str(inputs / "b_mono.flac"), "--model", str(model_dir), "--out-dir", str(tmp_path)]
    assert run_cli(capsys, *args, "-q")[0] == 0
    vocals = tmp_path / "tiny" / "b_mono" / "vocals.wav"
    os.utime(vocals, (1, 1))
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and out == ""
    assert re.search(
        r"skipping .*b_mono\.flac: .*vocals\.wav exists, made with the same settings \(use --force",
        err,
    )
    assert vocals.stat().st_mtime == 1
    assert run_cli(capsys, *args, "--force", "-q")[0] == 0
    assert vocals.stat().st_mtime > 1  # rewritten


def _bad_inputs(root: Path) -> dict[str, tuple[list[str], str]]:
    """Case name → (CLI arguments, expected error text)."""
    (root / "text.wav").write_text("hello, this is not audio\n" * 40)
    (root / "zero.mp3").write_bytes(b"")
    sf.write(root / "no_frames.wav", np.zeros((0, 2), np.float32), 44100)
    sf.write(root / "surround.wav", np.zeros((4410, 6), np.float32), 44100)
    sf.write(root / "nan.wav", np.full((4410, 2), np.nan, np.float32), 44100, subtype="FLOAT")
    sf.write(root / "fine.wav", np.zeros((4410, 2), np.float32), 44100)
    (root / "blocker").write_text("a file where the output folder should go")
    return {
        "missing": ([str(root / "nope.wav")], "nope.wav: no such file or folder"),
        "not audio": ([str(root / "text.wav")], "text.wav: not a readable audio file"),
        "empty file": ([str(root / "zero.mp3")], "zero.mp3: the file is empty (0 bytes)"),
        "zero length": ([str(root / "no_frames.wav")], "no_frames.wav holds no audio samples"),
        "6 channels": ([str(root / "surround.wav")], "surround.wav has 6 channels"),
        "nan": ([str(root / "nan.wav")], "nan.wav holds NaN or infinite samples"),
        "unwritable": (
            [str(root / "fine.wav"), "--out-dir", str(root / "blocker" / "out")],
            "cannot create output folder",
        ),
        "bad option": (
            [str(root / "fine.wav"), "--overlap", "90"],
            "need 0 < --overlap < --segment",
        ),
    }


def test_bad_inputs_give_one_line_errors_and_no_files(capsys, tmp_path, model_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case, (args, message) in _bad_inputs(inputs).items():
        out_dir = tmp_path / f"out-{case.replace(' ', '-')}"
        argv = [*args, "--model", str(model_dir), "-q"]
        if "--out-dir" not in argv:
            argv += ["--out-dir", str(out_dir)]
        code, _, err = run_cli(capsys, *argv)
        assert code == 1, case
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("unmix: error: "), (case, err)
        assert message in lines[0], (case, lines[0])
        leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and inputs not in p.parents]
        assert not leftovers, (case, leftovers)  # no partial or temporary files anywhere


def test_one_bad_file_does_not_stop_the_batch(capsys, tmp_path, model_dir, inputs):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC" + bytes(200))
    good = inputs / "b_mono.flac"
    code, _, err = run_cli(
        capsys,
        str(bad),
        str(good),
        "--model",
        str(model_dir),
        "--out-dir",
        str(tmp_path / "o"),
        "-q",
    )
    assert code == 1
    assert "broken.flac" in err and "1 of 2 inputs failed" in err
    assert (tmp_path / "o" / "tiny" / "b_mono" / "vocals.wav").is_file()
    assert not (tmp_path / "o" / "tiny" / "broken").exists()


def test_help_explains_every_option():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["separate"]
    text = sub.format_help()
    for option in [
        "--model", "--targets", "--residual", "--out-dir", "--format", "--niter", "--softmask",
        "--wiener-win-len", "--device", "--start", "--duration", "--jobs", "--force", "--quiet",
        "--segment", "--overlap", "--bits", "-n", "-o", "-d", "-j", "--two-stems",
        "--filename", "--threads", "--mp3-bitrate", "--mp3-preset", "--int24", "--float32",
        "--verbose",
    ]:  # fmt: skip
        assert option in text
    for action in sub._actions:
        assert action.help, action.dest
    assert "OUT/<model>/<track>/<stem>.<ext>" in text


def test_python_api_on_files_and_arrays(model_dir, inputs, excerpt):
    sep = load_separator(model_dir, device="cpu")
    stems = separate(inputs / "d32k.ogg", model=sep)
    mix, _ = audio_io.read(inputs / "d32k.ogg")
    assert list(stems) == list(TARGETS)
    assert all(s.shape == mix.shape for s in stems.values())
    audio, rate = excerpt
    mono = audio_io.resample(audio[0], rate, 48000)  # (T,) mono at 48 kHz
    out = separate_array(sep, mono, 48000)
    assert all(s.shape == (1, mono.shape[0]) for s in out.values())
    with pytest.raises(Exception, match="sample_rate is required"):
        separate(mono, model=sep)


def test_two_stem_karaoke_mode(capsys, tmp_path, model_dir, inputs):
    code, out, err = run_cli(
        capsys,
        str(inputs / "a48k.wav"),
        *("--model", str(model_dir), "--out-dir", str(tmp_path), "-q"),
        *("--targets", "vocals", "--residual"),
    )
    assert code == 0, err
    assert re.search(r"residual -?\d+\.\d dB re mixture", out)
    folder = tmp_path / "tiny" / "a48k"
    assert sorted(p.name for p in folder.glob("*.wav")) == ["residual.wav", "vocals.wav"]
    vocals, _ = sf.read(folder / "vocals.wav", dtype="float32")
    rest, _ = sf.read(folder / "residual.wav", dtype="float32")
    mix, _ = audio_io.read(inputs / "a48k.wav")
    np.testing.assert_allclose((vocals + rest).T, mix, atol=1e-5)


def test_two_stems_is_the_stem_and_exactly_the_rest(capsys, tmp_path, model_dir, inputs):
    code, _, err = run_cli(
        capsys, str(inputs / "a48k.wav"), "-n", str(model_dir), "-o", str(tmp_path), "-q",
        "--two-stems", "vocals",
    )  # fmt: skip
    assert code == 0, err
    folder = tmp_path / "tiny" / "a48k"
    assert sorted(p.name for p in folder.glob("*.wav")) == ["no_vocals.wav", "vocals.wav"]
    vocals, _ = sf.read(folder / "vocals.wav", dtype="float32")
    rest, _ = sf.read(folder / "no_vocals.wav", dtype="float32")
    mix, _ = sf.read(inputs / "a48k.wav", dtype="float32")
    np.testing.assert_array_equal(rest, mix - vocals)  # at the output rate, exactly
    code, _, err = run_cli(
        capsys, str(inputs / "a48k.wav"), "-n", str(model_dir), "--two-stems", "vocals",
        "--targets", "drums",
    )  # fmt: skip
    assert code == 1 and "--two-stems STEM already means --targets STEM --residual" in err


def test_parallel_files_give_the_same_stems(capsys, tmp_path, model_dir, inputs):
    sources = [str(inputs / n) for n in ("a48k.wav", "b_mono.flac", "d32k.ogg")]
    for jobs in ("1", "2"):
        code, out, err = run_cli(
            capsys, *sources, "-n", str(model_dir), "-o", str(tmp_path / jobs), "-j", jobs,
            "-q", "--duration", "1.5",
        )  # fmt: skip
        assert code == 0, err
        assert len(out.strip().splitlines()) == 3
    for name in ("a48k", "b_mono", "d32k"):
        for target in TARGETS:
            one, _ = sf.read(tmp_path / "1" / "tiny" / name / f"{target}.wav")
            two, _ = sf.read(tmp_path / "2" / "tiny" / name / f"{target}.wav")
            np.testing.assert_allclose(two, one, atol=1e-6)


def test_demucs_sample_format_flags(capsys, tmp_path, model_dir, inputs):
    args = [str(inputs / "b_mono.flac"), "-n", str(model_dir), "-q", "--duration", "0.5"]
    assert run_cli(capsys, *args, "-o", str(tmp_path / "i"), "--int24")[0] == 0
    assert sf.info(tmp_path / "i" / "tiny" / "b_mono" / "vocals.wav").subtype == "PCM_24"
    assert run_cli(capsys, *args, "-o", str(tmp_path / "f"), "--flac", "--int24")[0] == 0
    assert sf.info(tmp_path / "f" / "tiny" / "b_mono" / "vocals.flac").subtype == "PCM_24"
    code, _, err = run_cli(capsys, *args, "--flac", "--float32")
    assert code == 1 and "--bits float is not possible for flac" in err
    with pytest.raises(SystemExit):
        main(["separate", *args, "--int24", "--bits", "16"])
    assert "not allowed with argument" in capsys.readouterr().err
