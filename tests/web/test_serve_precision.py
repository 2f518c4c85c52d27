"""``unmix serve --precision``: checked before anything loads, carried into every separator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unmix.cli import main
from unmix.precision import cpu_bf16_support
from unmix.web.worker import Separators

from ..test_shifts import sdr, tiny_separator

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]


def test_fp16_on_cpu_is_refused_before_the_model_loads(tmp_path: Path, capsys) -> None:
    jobs = tmp_path / "jobs"
    code = main(
        ["serve", "--model", str(tmp_path / "missing"), "--precision", "fp16",
         "--device", "cpu", "--jobs-dir", str(jobs)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "precision fp16 needs a CUDA GPU" in err
    assert "missing" not in err and not jobs.exists()  # refused before the model or folder


def test_every_target_tuple_gets_the_precision_and_records_it() -> None:
    base = tiny_separator(seed=2)
    separators = Separators(
        base.config, base.model, base.wiener, torch.device("cpu"), precision="bf16"
    )
    full, vocals = separators.get(separators.targets), separators.get(("vocals",))
    assert full.precision == vocals.precision == "bf16"
    assert full.settings_record()["precision"] == "bf16"  # a re-run in fp32 refuses to mix stems
    plain = Separators(base.config, base.model, base.wiener, torch.device("cpu"))
    assert "precision" not in plain.get(plain.targets).settings_record()


@pytest.mark.skipif(not cpu_bf16_support()[0], reason="this CPU has no native bf16")
def test_bf16_stems_are_close_to_fp32_but_not_equal() -> None:
    base = tiny_separator(seed=3)
    x = torch.randn(1, 2, 44100, generator=torch.Generator().manual_seed(0))
    stems = {}
    for precision in ("fp32", "bf16"):
        separators = Separators(
            base.config, base.model, base.wiener, torch.device("cpu"), precision=precision
        )
        with torch.inference_mode():
            stems[precision] = separators.get(separators.targets)(x)
    assert not torch.equal(stems["fp32"], stems["bf16"])  # the networks really ran in bf16
    assert sdr(stems["fp32"], stems["bf16"]) > 30
