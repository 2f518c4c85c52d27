#!/usr/bin/env bash
# Smoke test of the NCCL / SyncBatchNorm path of `unmix train` under torchrun on a GPU machine:
# writes a tiny synthetic MUSDB18-HQ-style dataset, trains one epoch on every local GPU,
# then loads the result as a model. Usage: bash benchmarks/ddp_gpu_check.sh [NPROC]
set -euo pipefail
nproc=${1:-1}
work=$(mktemp -d)
python3 - "$work/data" <<'PY'
import sys
from pathlib import Path
import numpy as np, soundfile as sf
root = Path(sys.argv[1])
rng = np.random.default_rng(0)
names = ["Song A", "Song B", "Song C", "Actions - One Minute Smile"]  # the last is a validation track
for subset in ("train",):
    for name in names:
        folder = root / subset / name
        folder.mkdir(parents=True)
        stems = {s: (0.1 * rng.standard_normal((44100 * 3, 2))).astype(np.float32)
                 for s in ("vocals", "drums", "bass", "other")}
        for s, x in stems.items():
            sf.write(folder / f"{s}.wav", x, 44100)
        sf.write(folder / "mixture.wav", sum(stems.values()), 44100)
PY
torchrun --nproc-per-node "$nproc" -m unmix.train --root "$work/data" --is-wav --output "$work/model" \
  --source vocals --epochs 2 --hidden-size 32 --seq-dur 1 --samples-per-track 8 --batch-size 4 \
  --no-cache --quiet
python3 -c "import sys, unmix; s = unmix.load_separator(sys.argv[1], device='cpu'); print('loaded', s.targets)" "$work/model"
ls "$work/model"
