"""Check the accelerator path: separate the bundled clip on CPU and on CUDA/MPS with the same
random-weight umxhq-config model and report the difference and the speed.

    python benchmarks/device_check.py [--device cuda]

Prints one JSON line. Used for the GPU figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import unmix
from unmix import audio as audio_io
from unmix.config import CONFIGS
from unmix.device import pick_device
from unmix.filtering import WienerSettings
from unmix.models.umx import UMX, OpenUnmix
from unmix.separator import Separator

CLIP = Path(__file__).resolve().parents[1] / "examples" / "nightowl-preview.m4a"


def build(seed: int = 0) -> Separator:
    config = CONFIGS["umxhq"]
    torch.manual_seed(seed)
    models = {t: OpenUnmix.from_config(config) for t in config.targets}
    for net in models.values():
        with torch.no_grad():
            net.output_scale.fill_(0.1)
            net.output_mean.fill_(0.25)
    return Separator(UMX(models), config, WienerSettings(niter=1)).freeze()


def timed(
    sep: Separator, x: torch.Tensor, device: torch.device, repeat: int = 3
) -> tuple[torch.Tensor, float]:
    sep = sep.to(device)
    xd = x.to(device)
    best = float("inf")
    out = torch.empty(0)
    with torch.inference_mode():
        for _ in range(repeat):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = sep(xd)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return out.cpu(), best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    audio, rate = audio_io.read(CLIP)
    x = torch.from_numpy(audio)[None]
    sep = build()
    cpu_out, cpu_s = timed(sep, x, torch.device("cpu"), repeat=1)
    dev_out, dev_s = timed(sep, x, device)
    seconds = x.shape[-1] / rate
    print(
        json.dumps(
            {
                "device": str(device),
                "name": torch.cuda.get_device_name()
                if device.type == "cuda"
                else platform.processor(),
                "torch": torch.__version__,
                "unmix": unmix.__version__,
                "max_abs_diff_vs_cpu": float((dev_out - cpu_out).abs().max()),
                "rtf_device": seconds / dev_s,
                "rtf_cpu": seconds / cpu_s,
                "cpu_threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
