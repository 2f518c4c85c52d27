"""Training throughput: unmix's training step vs the reference's, in the same run.

One step = mixture STFT + model forward + target STFT + MSE + backward + Adam, on a
batch of 16 random 6-s stereo excerpts with the umxhq network size (hidden 512,
n_fft 4096, hop 1024, max_bin 1487). The reference is openunmix 1.3.0: its
``OpenUnmix``, its STFT encoder (``make_filterbanks`` + ``ComplexNorm``),
``mse_loss`` and ``torch.optim.Adam`` as in its ``scripts/train.py``. Steps of the
two alternate so that machine load hits both alike; the median step time is reported.

    python benchmarks/bench_train.py                    # CPU, torch's default threads
    python benchmarks/bench_train.py --device cuda --steps 20 --warmup 5
    python benchmarks/bench_train.py --json out.json    # machine-readable result

"unmix --amp" is the same step under bfloat16 autocast (``unmix train --amp``), which
changes the arithmetic; "unmix" does the reference's float32 arithmetic. ``--targets 4`` adds unmix's multi-target step (four networks on one batch sharing the
mixture STFT, as ``unmix train --source all`` does), reported per network.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from unmix.config import CONFIGS
from unmix.losses import SpectrogramMSE
from unmix.models.umx import OpenUnmix
from unmix.train.units import make_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the oracle helpers
from tests.helpers import import_openunmix

Step = Callable[[], None]


def batch(size: int, seconds: float, device: torch.device) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = int(seconds * 44100)
    mix = torch.randn(size, 2, n, generator=gen) * 0.1
    target = torch.randn(size, 1, 2, n, generator=gen) * 0.05
    return mix.to(device), target.to(device)


def reference_step(mix: Tensor, target: Tensor, device: torch.device) -> Step:
    """openunmix 1.3.0: model + encoder + MSE + Adam, as in its scripts/train.py."""
    openunmix = import_openunmix()
    from openunmix import transforms

    torch.manual_seed(0)
    model = openunmix.model.OpenUnmix(
        nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487
    ).to(device)
    stft, _ = transforms.make_filterbanks(n_fft=4096, n_hop=1024, sample_rate=44100.0)
    encoder = torch.nn.Sequential(stft, transforms.ComplexNorm(mono=False)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=0.00001)
    model.train()
    y = target[:, 0]

    def step() -> None:
        optimizer.zero_grad()
        estimate = model(encoder(mix))
        loss = torch.nn.functional.mse_loss(estimate, encoder(y))
        loss.backward()
        optimizer.step()

    return step


def unmix_step(
    mix: Tensor, target: Tensor, device: torch.device, nb_targets: int = 1, amp: bool = False
) -> Step:
    """unmix: the Trainer's inner loop for ``nb_targets`` networks on one batch (``amp``:
    bfloat16 autocast, as ``unmix train --amp``)."""
    config = CONFIGS["umxhq"]
    torch.manual_seed(0)
    models = [OpenUnmix.from_config(config).to(device).train() for _ in range(nb_targets)]
    objective = SpectrogramMSE(config).to(device)
    optimizers = [make_optimizer(m, 0.001, 0.00001, device) for m in models]

    def step() -> None:
        for model, optimizer in zip(models, optimizers, strict=True):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = objective(model, mix, target)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        objective.forget()

    return step


def timed(step: Step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, object]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    mix, target = batch(args.batch_size, args.seq_dur, device)
    steps = {
        "reference": (reference_step(mix, target, device), 1),
        "unmix": (unmix_step(mix, target, device), 1),
        "unmix --amp": (unmix_step(mix, target, device, amp=True), 1),
    }
    if args.targets > 1:
        steps[f"unmix x{args.targets}"] = (
            unmix_step(mix, target, device, args.targets),
            args.targets,
        )
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.warmup + args.steps):
        for name, (step, _) in steps.items():
            t = timed(step, device)
            if i >= args.warmup:
                times[name].append(t)
    result: dict[str, object] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "batch": f"{args.batch_size} x {args.seq_dur:g} s stereo, umxhq size",
        "steps": args.steps,
    }
    ref = statistics.median(times["reference"])
    for name, (_, nets) in steps.items():
        med = statistics.median(times[name])
        per_net = med / nets
        result[name] = {
            "step_s": round(med, 4),
            "samples_per_s_per_network": round(args.batch_size / per_net, 2),
            "speedup_vs_reference": round(ref / per_net, 3),
        }
    return result


def data_throughput(root: str, seconds: float, items: int) -> dict[str, float]:
    """Excerpts/s: unmix's cached songs vs decoding each excerpt from the files
    (what musdb/stempeg-style loaders do)."""
    from pathlib import Path

    from unmix import audio
    from unmix.data import DataOptions, ExcerptDataset, ExcerptSampler, build
    from unmix.data.cache import default_cache_dir
    from unmix.tracks import SOURCES

    opts = DataOptions(root=Path(root), targets=("vocals",), cache=default_cache_dir())
    start = time.perf_counter()
    data = build("musdb", opts)
    prepare = time.perf_counter() - start
    seq = int(seconds * 44100)
    sampler = ExcerptSampler([s.length for s in data.train], SOURCES, seq, 64)
    dataset = ExcerptDataset(data.train, sampler, ("vocals",), epoch=0)
    start = time.perf_counter()
    for i in range(items):
        dataset[i]
    cached = items / (time.perf_counter() - start)
    files = sorted(Path(root, "train").glob("*.stem.mp4"))
    start = time.perf_counter()
    for i in range(max(items // 8, 4)):
        for k, source in enumerate(SOURCES):
            path = files[(i + k) % len(files)]
            audio.read(path, audio.STEM_NAMES.index(source), 0.5, seconds)
    decoded = max(items // 8, 4) / (time.perf_counter() - start)
    return {
        "prepare_s": round(prepare, 2),
        "cached_excerpts_per_s": round(cached, 1),
        "decoded_excerpts_per_s": round(decoded, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-dur", type=float, default=6.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--targets", type=int, default=1, help="also time N networks per batch")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--data", default=None, help="MUSDB18 root: also time data loading")
    args = parser.parse_args()
    result = run(args) if args.steps > 0 else {}
    if args.data:
        result["data"] = data_throughput(args.data, args.seq_dur, 256)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
