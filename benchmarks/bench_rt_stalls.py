"""What the compute stalls of a paced stream are (issue 14; docs/benchmarks.md, session 5).

  python benchmarks/bench_rt_stalls.py [--seconds 60] [--repeats 2] [--configs base all]
      [--precision fp32] [--model umx-rt-preview]

Runs a bare paced loop of ``StreamSeparator.process`` (block = hop, one thread, SCHED_FIFO
10 where permitted, garbage collector off, no I/O threads) on the first ``--seconds`` of
/tmp/rt/long10min.wav (white noise where missing), once per configuration in a fresh
process, the configurations interleaved ``--repeats`` times. Around every block it reads:
wall time, the thread's CPU time, minor/major page faults and voluntary/involuntary context
switches (``getrusage(RUSAGE_THREAD)``), the time the thread waited runnable on a run queue
(``/proc/thread-self/schedstat``) and the hypervisor's steal, irq and softirq ticks of the
CPU it ran on (``/proc/stat``). It prints each block slower than a threshold with those
figures, then a table of counts per configuration.

Configurations (cumulative mitigations, see unmix.realtime.quiet):
  base   what `unmix stream --realtime` did in session 4
  lock   + mlockall(MCL_CURRENT | MCL_FUTURE) after touching the weights
  thp    + prctl(PR_SET_THP_DISABLE)
  pin    + the compute thread pinned to the last CPU
  all    lock + thp + pin
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

LIBC = ctypes.CDLL(None, use_errno=True)
MITIGATIONS = {"base": (), "lock": ("lock",), "thp": ("thp",), "pin": ("pin",),
               "all": ("lock", "thp", "pin")}  # fmt: skip


def cpu_ticks(cpu: int) -> tuple[int, int, int]:
    """steal, irq, softirq ticks (USER_HZ) of one CPU."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return v[7], v[5], v[6]
    return 0, 0, 0


def run_wait_ns() -> int:
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1])


def child(args: argparse.Namespace) -> None:
    from unmix import audio as audio_io
    from unmix.realtime import StreamSeparator
    from unmix.realtime.pacing import Pacer, raise_priority

    torch.set_num_threads(1)
    stream = StreamSeparator(args.model, precision=args.precision)
    hop = stream.separator.config.n_hop
    n = int(args.seconds * stream.sample_rate) // hop * hop
    wav = Path("/tmp/rt/long10min.wav")
    if wav.exists():
        audio = audio_io.read(wav)[0][:, :n].astype(np.float32)
    else:
        audio = 0.1 * np.random.default_rng(0).standard_normal((2, n)).astype(np.float32)
    blocks = [np.ascontiguousarray(audio[:, i : i + hop]) for i in range(0, n, hop)]
    for b in blocks[:20]:  # warm up, then start the stream again
        stream.process(b)
    stream.reset()
    got = []
    if "thp" in args.mitigations:
        got.append(f"thp-off rc={LIBC.prctl(41, 1, 0, 0, 0)}")
    if "pin" in args.mitigations:
        os.sched_setaffinity(0, {os.cpu_count() - 1})
        got.append(f"pinned {os.sched_getaffinity(0)}")
    if "lock" in args.mitigations:
        rc = LIBC.mlockall(1 | 2)
        got.append(f"mlockall rc={rc} errno={ctypes.get_errno()}")
    gc.collect()
    gc.freeze()
    gc.disable()
    prio, restore = raise_priority()
    got.append(prio)
    pacer = Pacer(hop / stream.sample_rate, realtime=True)
    rows = []
    pacer.begin()
    for i, b in enumerate(blocks):
        pacer.wait_until(pacer.arrival(i))
        cpu = LIBC.sched_getcpu()
        t0, r0, w0 = cpu_ticks(cpu), resource.getrusage(resource.RUSAGE_THREAD), run_wait_ns()
        began, c0 = time.perf_counter(), time.thread_time()
        stream.process(b)
        ended, c1 = time.perf_counter(), time.thread_time()
        t1, r1, w1 = cpu_ticks(cpu), resource.getrusage(resource.RUSAGE_THREAD), run_wait_ns()
        rows.append((ended - began, c1 - c0, r1.ru_minflt - r0.ru_minflt,
                     r1.ru_majflt - r0.ru_majflt, r1.ru_nvcsw - r0.ru_nvcsw,
                     r1.ru_nivcsw - r0.ru_nivcsw, (w1 - w0) / 1e9, t1[0] - t0[0],
                     t1[1] - t0[1], t1[2] - t0[2], cpu, LIBC.sched_getcpu()))  # fmt: skip
        if ended > pacer.arrival(i) + pacer.block_seconds:
            pacer.overruns += 1
    restore()
    with open("/proc/self/status") as f:
        status = {k: v.strip() for k, v in (line.split(":", 1) for line in f)}
    json.dump({"rows": rows, "got": got, "overruns": pacer.overruns,
               "block": pacer.block_seconds, "VmLck": status.get("VmLck"),
               "VmRSS": status.get("VmRSS")}, sys.stdout)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--configs", nargs="+", default=["base", "all"], choices=list(MITIGATIONS))
    p.add_argument("--model", default="umx-rt-preview")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threshold", type=float, default=0.006, help="print blocks slower (s)")
    p.add_argument("--child", nargs="*", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        args.mitigations = args.child
        child(args)
        return
    totals: dict[str, list[dict[str, float]]] = {c: [] for c in args.configs}
    for rep in range(args.repeats):
        for config in args.configs:
            cmd = [sys.executable, __file__, "--seconds", str(args.seconds), "--model",
                   args.model, "--precision", args.precision, "--child", *MITIGATIONS[config]]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                            env=env).stdout)  # fmt: skip
            rows, block = np.array(out["rows"]), out["block"]
            load = os.getloadavg()[0]
            print(f"## {config} (repeat {rep + 1}): {out['got']}, VmLck {out['VmLck']}, "
                  f"VmRSS {out['VmRSS']}, load {load:.1f}")  # fmt: skip
            print("block | wall ms | cpu ms | minflt | majflt | vcsw | ivcsw | runq ms | "
                  "steal | irq | softirq | cpu")  # fmt: skip
            for k, r in enumerate(rows):
                if r[0] > args.threshold:
                    print(f"{k} | {1e3 * r[0]:.2f} | {1e3 * r[1]:.2f} | {r[2]:.0f} | {r[3]:.0f}"
                          f" | {r[4]:.0f} | {r[5]:.0f} | {1e3 * r[6]:.2f} | {r[7]:.0f} | "
                          f"{r[8]:.0f} | {r[9]:.0f} | {r[10]:.0f}->{r[11]:.0f}")  # fmt: skip
            totals[config].append({
                "blocks": len(rows), "over_block": int((rows[:, 0] > block).sum()),
                "over_6ms": int((rows[:, 0] > 0.006).sum()), "overruns": out["overruns"],
                "p50": 1e3 * float(np.percentile(rows[:, 0], 50)),
                "p99": 1e3 * float(np.percentile(rows[:, 0], 99)),
                "max": 1e3 * float(rows[:, 0].max()),
                "minflt": float(rows[20:, 2].sum()), "steal": float(rows[:, 7].sum()),
                "ivcsw": float(rows[:, 5].sum()), "load": load,
            })  # fmt: skip
    print(
        "\n| config | run | blocks | compute > block | > 6 ms | overruns | p50 / p99 / max "
        "(ms) | minor faults (after block 20) | steal ticks | invol. switches | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for config, runs in totals.items():
        for k, t in enumerate(runs):
            print(
                f"| {config} | {k + 1} | {t['blocks']} | {t['over_block']} | {t['over_6ms']}"
                f" | {t['overruns']} | {t['p50']:.2f} / {t['p99']:.2f} / {t['max']:.2f} | "
                f"{t['minflt']:.0f} | {t['steal']:.0f} | {t['ivcsw']:.0f} | {t['load']:.1f} |"
            )
        print(
            f"| {config} | median | | {statistics.median(t['over_block'] for t in runs)} | "
            f"{statistics.median(t['over_6ms'] for t in runs)} | | | | | | |"
        )


if __name__ == "__main__":
    main()
