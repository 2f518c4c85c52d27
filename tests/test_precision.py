"""``--precision`` (unmix.precision): fp32 unchanged bit for bit, bf16 close to fp32 on real
music, the error paths, the CLI and API, the record of outputs, and fp16 on CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor

import unmix
from unmix import audio as audio_io
from unmix import precision as precision_module
from unmix.cli import main
from unmix.config import ModelConfig
from unmix.engine import record
from unmix.errors import UnmixError
from unmix.hub.loading import load_separator, save_model
from unmix.models.umx import UMX, OpenUnmix
from unmix.precision import PRECISIONS, check_precision, cpu_bf16_support, parse_precision
from unmix.separator import Separator

from .helpers import randomize

CPU = torch.device("cpu")
TINY = ModelConfig(targets=("vocals", "other"), n_fft=512, n_hop=128, hidden_size=32, max_bin=200)
BF16 = pytest.mark.skipif(not cpu_bf16_support()[0], reason="this CPU has no native bf16")

pytestmark = pytest.mark.usefixtures("one_thread")


def sdr(reference: np.ndarray | Tensor, estimate: np.ndarray | Tensor) -> float:
    """Signal to difference ratio (dB) of a whole stem."""
    ref = np.asarray(reference, dtype=np.float64)
    err = ref - np.asarray(estimate, dtype=np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-300)))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nets = {}
    for k, target in enumerate(TINY.targets):
        nets[target] = OpenUnmix.from_config(TINY)
        randomize(nets[target], 70 + k)
    return save_model(tmp_path_factory.mktemp("models") / "tiny", TINY, UMX(nets))


@pytest.fixture(scope="module")
def excerpt(clip: Path) -> tuple[np.ndarray, int]:
    audio, rate = audio_io.read(clip, duration=4.0)
    return audio, rate


@pytest.fixture()
def song(tmp_path: Path, excerpt: tuple[np.ndarray, int]) -> Path:
    audio, rate = excerpt
    path = tmp_path / "song.wav"
    sf.write(path, audio[:, : rate // 2].T, rate, subtype="FLOAT")
    return path


# --- names and devices ----------------------------------------------------------------


def test_names_parse_in_any_case_and_unknown_ones_are_one_line() -> None:
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    assert parse_precision(" BF16 ") == "bf16"
    with pytest.raises(UnmixError) as err:
        parse_precision("fp8")
    assert str(err.value) == "unknown precision 'fp8'; use one of fp32, bf16, fp16"
    with pytest.raises(UnmixError, match="unknown precision 'half'"):
        check_precision("half", CPU)


def test_fp32_runs_anywhere_fp16_needs_cuda() -> None:
    for device in ("cpu", "cuda", "mps"):
        assert check_precision("fp32", torch.device(device)) == "fp32"
    with pytest.raises(UnmixError) as err:
        check_precision("fp16", CPU)
    assert "\n" not in str(err.value)
    assert "fp16 needs a CUDA GPU" in str(err.value)
    assert "use bf16 on CPU or fp16 on CUDA" in str(err.value)
    with pytest.raises(UnmixError, match="not supported on mps; use fp32"):
        check_precision("bf16", torch.device("mps"))


def test_bf16_on_a_cpu_without_it_says_what_was_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    native, found = cpu_bf16_support()
    assert not native and "oneDNN bf16 no" in found
    with pytest.raises(UnmixError) as err:
        check_precision("bf16", CPU)
    message = str(err.value)
    assert "needs a CPU with AVX-512 BF16 or AMX" in message
    assert torch.backends.cpu.get_cpu_capability() in message
    assert "use fp32" in message


@BF16
def test_bf16_is_accepted_on_this_cpu() -> None:
    assert check_precision("bf16", CPU) == "bf16"


# --- the separator ----------------------------------------------------------------------


class _Float32Separator(Separator):
    """The separator as it was before precisions existed: the network called plainly."""

    def source_magnitudes(self, X: Tensor) -> Tensor:
        out: Tensor = self.model(X)
        return out.permute(0, 4, 1, 3, 2)


@pytest.mark.parametrize("threads", [1, 2])
def test_fp32_default_is_bit_identical_to_the_plain_network(
    tiny_dir: Path, excerpt: tuple[np.ndarray, int], threads: int
) -> None:
    sep = load_separator(tiny_dir, device="cpu")
    assert sep.precision == "fp32" and sep.settings_record() == {}
    before = _Float32Separator(sep.model, sep.config, sep.wiener).freeze()
    x = torch.from_numpy(excerpt[0])[None]
    torch.set_num_threads(threads)
    with torch.inference_mode():
        assert torch.equal(sep(x), before(x))


def test_unknown_precision_in_the_separator_is_refused(tiny_dir: Path) -> None:
    sep = load_separator(tiny_dir, device="cpu")
    with pytest.raises(UnmixError, match="unknown precision 'int8'"):
        Separator(sep.model, sep.config, precision="int8")  # type: ignore[arg-type]


@BF16
def test_bf16_stems_reproduce_fp32_on_real_music(clip: Path) -> None:
    """umx-preview on the bundled clip: every stem >= 30 dB from the fp32 stem (measured
    47-67 dB); a network left in fp32 (equal stems) or a broken cast (< 30 dB) fails."""
    audio, _ = audio_io.read(clip)
    x = torch.from_numpy(audio)[None]
    fp32 = load_separator("umx-preview", device="cpu")
    bf16 = load_separator("umx-preview", device="cpu", precision="bf16")
    with torch.inference_mode():
        a, b = fp32(x)[0], bf16(x)[0]
    assert b.dtype == torch.float32 and torch.isfinite(b).all()
    assert not torch.equal(a, b)  # the networks really ran in bf16
    for j, name in enumerate(bf16.output_names):
        assert sdr(a[j], b[j]) >= 30, name


@BF16
def test_bf16_reaches_the_branch_threads(tiny_dir: Path, excerpt: tuple[np.ndarray, int]) -> None:
    """UMX runs its branches on worker threads when torch has two; autocast is per thread,
    so the network's output must not depend on the thread count."""
    sep = load_separator(tiny_dir, device="cpu", precision="bf16")
    X = sep.stft(torch.from_numpy(excerpt[0])[None]).abs()
    with torch.inference_mode():
        one = sep.source_magnitudes(X)
        torch.set_num_threads(2)
        two = sep.source_magnitudes(X)
        torch.set_num_threads(1)
        full = load_separator(tiny_dir, device="cpu").source_magnitudes(X)
    assert one.dtype == two.dtype == torch.float32
    assert torch.equal(one, two)
    assert not torch.equal(one, full)


@BF16
def test_an_ensemble_passes_the_precision_to_its_members_and_records_it(
    tiny_dir: Path, excerpt: tuple[np.ndarray, int]
) -> None:
    both = f"{tiny_dir}+{tiny_dir}"
    ensemble = load_separator(both, device="cpu", precision="bf16")
    assert [m.precision for m in ensemble.members] == ["bf16", "bf16"]
    assert ensemble.settings_record()["precision"] == "bf16"
    assert "precision" not in load_separator(both, device="cpu").settings_record()
    x = torch.from_numpy(excerpt[0])[None]
    with torch.inference_mode():
        alone = load_separator(tiny_dir, device="cpu", precision="bf16")(x)
        assert torch.allclose(ensemble(x), alone, atol=1e-6)


# --- API and CLI --------------------------------------------------------------------------


@BF16
def test_api_separate_with_precision(tiny_dir: Path, excerpt: tuple[np.ndarray, int]) -> None:
    audio, rate = excerpt
    fp32 = unmix.separate(audio, rate, model=tiny_dir)
    bf16 = unmix.separate(audio, rate, model=tiny_dir, precision="bf16")
    for name in TINY.targets:
        assert bf16[name].dtype == np.float32
        assert 30 <= sdr(fp32[name], bf16[name]) < 200


def test_api_refuses_fp16_on_cpu_before_loading(excerpt: tuple[np.ndarray, int]) -> None:
    with pytest.raises(UnmixError, match="fp16 needs a CUDA GPU"):
        unmix.separate(*excerpt, model="no-such-model", precision="fp16", device="cpu")


def test_onnx_graphs_run_in_fp32_only(tmp_path: Path) -> None:
    with pytest.raises(UnmixError) as err:
        load_separator(tmp_path / "model.onnx", precision="bf16")
    assert str(err.value).startswith("an .onnx model runs in fp32")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@BF16
def test_cli_precision_on_the_bundled_clip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, clip: Path
) -> None:
    common = [str(clip), "-n", "umx-preview", "-d", "cpu", "--format", "wav", "--bits", "float"]
    assert run(capsys, "separate", *common, "-o", str(tmp_path / "a"), "-q")[0] == 0
    code, _, err = run(
        capsys, "separate", *common, "-o", str(tmp_path / "b"), "--precision", "bf16"
    )
    assert code == 0, err
    assert "bf16" in err  # the console's note names it
    folder = Path("umx-preview") / clip.name.split(".")[0]
    for name in ("vocals", "drums", "bass", "other"):
        a, _ = sf.read(tmp_path / "a" / folder / f"{name}.wav")
        b, _ = sf.read(tmp_path / "b" / folder / f"{name}.wav")
        assert 30 <= sdr(a, b) < 200, name
    settings = json.loads((tmp_path / "b" / folder / record.RECORD_NAME).read_text())["files"]
    assert settings["vocals.wav"]["precision"] == "bf16"
    settings = json.loads((tmp_path / "a" / folder / record.RECORD_NAME).read_text())["files"]
    assert "precision" not in settings["vocals.wav"]  # fp32 records as before


def test_cli_fp16_on_cpu_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dir: Path, song: Path
) -> None:
    out = tmp_path / "out"
    argv = ["separate", str(song), "-n", str(tiny_dir), "-d", "cpu", "-o", str(out)]
    code, _, err = run(capsys, *argv, "--precision", "fp16")
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "use bf16 on CPU or fp16 on CUDA" in err
    assert not list(out.rglob("*.wav"))
    with pytest.raises(SystemExit):
        main([*argv, "--precision", "fp64"])
    assert "invalid choice: 'fp64'" in capsys.readouterr().err


@BF16
def test_a_rerun_with_another_precision_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dir: Path, song: Path
) -> None:
    out = tmp_path / "out"
    common = ["separate", str(song), "-n", str(tiny_dir), "-d", "cpu", "-o", str(out), "-q"]
    assert run(capsys, *common, "--precision", "bf16")[0] == 0
    stem = out / "tiny" / "song" / "vocals.wav"
    first = stem.read_bytes()
    code, _, err = run(capsys, *common)  # fp32 into the bf16 stems' folder
    assert code == 1
    assert "vocals.wav was made with other settings" in err
    assert stem.read_bytes() == first  # nothing mixed
    assert run(capsys, *common, "--precision", "bf16")[0] == 0  # same settings: kept
    assert run(capsys, *common, "--force")[0] == 0
    assert stem.read_bytes() != first


@BF16
def test_evaluate_with_precision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_dir: Path, stem_track: Path
) -> None:
    root, name = stem_track.parent.parent, stem_track.name.removesuffix(".stem.mp4")
    common = ["--root", str(root), "--tracks", name, "--no-plot", "--metrics", "sdr"]
    stems = {}
    for p in ("fp32", "bf16"):
        est = tmp_path / f"est-{p}"
        argv = ["evaluate", "--model", str(tiny_dir), "--save-estimates", str(est), "-d", "cpu"]
        code, out, err = run(
            capsys, *argv, *common, "--out-dir", str(tmp_path / p), "--precision", p
        )
        assert code == 0, err
        assert ("precision bf16" in out + err) == (p == "bf16")
        stems[p] = {t: sf.read(next(est.rglob(f"{t}.wav")))[0] for t in TINY.targets}
    for t in TINY.targets:
        assert 30 <= sdr(stems["fp32"][t], stems["bf16"][t]) < 200, t


@BF16
def test_ray_catalogue_records_and_loads_the_precision(tiny_dir: Path) -> None:
    """``--engine ray``: the ledger's settings carry the precision (fp32: absent, as before)
    and each actor loads its separator with it."""
    from unmix.catalog.cli import settings_from_args
    from unmix.catalog.worker import load_for
    from unmix.cli import build_parser

    def settings(*extra: str) -> dict[str, object]:
        argv = ["separate", "x.wav", "--model", str(tiny_dir), "--engine", "ray", *extra]
        return settings_from_args(build_parser().parse_args(argv))

    assert "precision" not in settings()
    recorded = settings("--precision", "bf16")
    assert recorded["precision"] == "bf16"
    assert load_for(recorded, "cpu").precision == "bf16"
    assert load_for(settings(), "cpu").precision == "fp32"


# --- CUDA -------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_reduced_precision_close_to_fp32(clip: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    audio, _ = audio_io.read(clip)
    x = torch.from_numpy(audio)[None].cuda()
    fp32 = load_separator("umx-preview", device="cuda")
    reduced = load_separator("umx-preview", device="cuda", precision=precision)
    with torch.inference_mode():
        a, b = fp32(x)[0].cpu(), reduced(x)[0].cpu()
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    for j, name in enumerate(reduced.output_names):
        assert sdr(a[j], b[j]) >= 30, name


def test_network_precision_is_a_no_op_for_fp32() -> None:
    with precision_module.network_precision("fp32", CPU):
        assert not torch.is_autocast_enabled("cpu")
    with precision_module.network_precision("bf16", CPU):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
