"""What a Monitor costs a training loop: the digits MLP, ``monitor.step()`` after every epoch.

The loop (sklearn's digits, MLP 64-256-256-128-10, Adam, batches of 64, one torch thread as
the notebooks use for tiny matrices) is timed without a Monitor and with one, runs
interleaved so that both see the same machine; the ratio of medians is the overhead (goal:
<= 1.1x in the default background mode). The time to finish the pending analyses after the
loop (``wait()``) is reported apart: it is not spent by the training loop.

Variants: the default (a child process at nice +10, ``when_busy="latest"``); the same with
``when_busy="wait"`` (every epoch recorded, the loop may wait); a worker thread instead of a
process (it shares Python's interpreter lock with the loop), at nice +10 and at the loop's
priority; and foreground mode (the analysis inside ``step()``), for scale. The child
process is started before the timed loop (its start-up, a few seconds, happens once per run
of a training script).

    python benchmarks/bench_monitor.py               # a few minutes on 2 cores
    python benchmarks/bench_monitor.py --epochs 10 --repeats 3
    python benchmarks/bench_monitor.py --interference   # worst case: an analysis running all the time

``--interference`` times the training loop while a worker analyses the MLP's weights without
pause, in a thread or in a child process, at nice 0 or +10: what a thread's share of the
interpreter lock costs a Python training loop, apart from the share of the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch
from torch import nn

from farms_viz.tracking import Monitor

WINDOW = {"window": 32, "windows_per_dim": 5}  # the digits layers are small (notebook 02's setting)


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def train(x, y, epochs: int, monitor_kwargs: dict | None) -> dict:
    """Seconds of the training loop (monitor steps included), of the final wait, and what was recorded."""
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    shuffle = torch.Generator().manual_seed(0)
    monitor = Monitor(model, **WINDOW, **monitor_kwargs) if monitor_kwargs is not None else None
    if monitor is not None and monitor.mode == "process":  # the child's start-up is timed apart
        t = time.perf_counter()
        monitor._worker.start(wait=True)
        startup = time.perf_counter() - t
    step_seconds, epoch_seconds = [], []
    start, start_cpu = time.perf_counter(), time.thread_time()
    for epoch in range(epochs):
        epoch_start = time.perf_counter()
        for batch in torch.randperm(len(y), generator=shuffle).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
        if monitor is not None:
            t = time.perf_counter()
            monitor.step(epoch)
            step_seconds.append(time.perf_counter() - t)
        epoch_seconds.append(time.perf_counter() - epoch_start)
    loop, loop_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    out = {"loop": loop, "epoch": statistics.median(epoch_seconds), "cpu": loop_cpu, "wait": 0.0, "recorded": 0,
           "dropped": 0, "step": 0.0,
           "startup": startup if monitor is not None and monitor.mode == "process" else 0.0}
    if monitor is not None:
        t = time.perf_counter()
        monitor.wait()
        out.update(wait=time.perf_counter() - t, recorded=len(monitor.steps), dropped=len(monitor.dropped_steps),
                   step=statistics.median(step_seconds))
        monitor.close()
    return out


def _analyse_forever(stop, nice: int, count) -> None:
    """A worker that analyses the MLP's weights until ``stop`` is set (thread or child process)."""
    from farms_viz.engine.cache import SPECTRA
    from farms_viz.engine.cpu_threads import _make_sequential
    from farms_viz.engine.params import AnalysisParams
    from farms_viz.tracking.snapshot import WeightSnapshot
    from farms_viz.tracking.worker import analyze_here, lower_priority

    _make_sequential()
    lower_priority(nice)
    snapshot, params = WeightSnapshot.take(mlp()), AnalysisParams(**WINDOW)
    while not stop.is_set():
        SPECTRA.clear()  # every round computes afresh
        analyze_here(snapshot, params)
        with count.get_lock():
            count.value += 1


def interference(x, y, repeats: int, epochs: int = 6) -> None:
    import threading

    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    names = ("alone", "thread, nice 0", "thread, nice +10", "process, nice 0", "process, nice +10")
    times: dict[str, list[float]] = {name: [] for name in names}
    train(x, y, 1, None)
    for _ in range(repeats):
        for name in names:
            stop, count = context.Event(), context.Value("i", 0)
            nice = 10 if name.endswith("+10") else 0
            worker = None
            if name.startswith("thread"):
                worker = threading.Thread(target=_analyse_forever, args=(stop, nice, count))
            elif name.startswith("process"):
                worker = context.Process(target=_analyse_forever, args=(stop, nice, count))
            if worker is not None:
                worker.start()
                while count.value < 1:  # started (a child imports torch first) and analysing
                    time.sleep(0.05)
            times[name].append(train(x, y, epochs, None)["loop"])
            stop.set()
            if worker is not None:
                worker.join()
    base = statistics.median(times["alone"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"training loop ({epochs} epochs) while a worker analyses without pause; load average {load:.1f}, "
          f"{repeats} interleaved repeats (medians)")
    for name in names:
        t = statistics.median(times[name])
        print(f"{name:20s} {t:6.2f} s  {t / base:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1)")
    parser.add_argument("--interference", action="store_true",
                        help="the worst case instead: the loop while a worker analyses without pause")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.interference:
        interference(*digits(), repeats=args.repeats)
        return
    warnings.filterwarnings("ignore", message=".*fell behind")  # counted in the table instead
    x, y = digits()
    variants = {
        "process (default: latest, nice +10)": {},
        "process, when_busy='wait'": {"when_busy": "wait"},
        "thread, nice +10": {"background": "thread"},
        "thread, nice=0 (the loop's priority)": {"background": "thread", "nice": 0},
        "foreground (analysis inside step())": {"background": False},
    }
    train(x, y, 2, None)  # warm up torch, sklearn and farms_viz
    train(x, y, 2, {})
    # Each variant runs beside its own no-monitor run, in alternating order (ABBA over the repeats):
    # this machine's speed drifts by up to 1.7x within seconds, so only adjacent pairs compare.
    # "no monitor (A/A)" pairs two identical loops: its spread is the noise floor of the table.
    runs: dict[str, list[tuple[dict, dict]]] = {"no monitor (A/A)": [], **{name: [] for name in variants}}
    for repeat in range(args.repeats):
        for name in runs:
            kwargs = variants.get(name)
            if repeat % 2 == 0:
                base = train(x, y, args.epochs, None)
                run = train(x, y, args.epochs, kwargs)
            else:
                run = train(x, y, args.epochs, kwargs)
                base = train(x, y, args.epochs, None)
            runs[name].append((run, base))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    startups = [run["startup"] for pairs in runs.values() for run, _ in pairs if run["startup"]]
    base_loop = statistics.median(base["loop"] for pairs in runs.values() for _, base in pairs)
    print(f"child process start-up (not in the loop times): median {statistics.median(startups):.1f} s")
    print(f"digits MLP, {args.epochs} epochs (no-monitor loop: median {base_loop:.2f} s), torch threads "
          f"{args.threads}, {os.cpu_count()} cores, load average {load:.1f}, {args.repeats} repeats, each variant "
          f"paired with a no-monitor run beside it (order alternating)")
    print("loop: median over the repeats of the paired ratio of whole-loop times (min-max); epoch: the same for "
          "each run's median epoch (robust to a slow burst within a run); cpu: CPU time of the training thread "
          "itself, paired (snapshot copies included, waiting for cores not)")
    print(f"{'':40s} {'loop':>6s} {'min-max':>11s} {'epoch':>6s} {'cpu':>6s} {'step() ms':>9s} {'wait s':>7s} "
          f"{'recorded':>9s}")
    for name, pairs in runs.items():
        loop = [run["loop"] / base["loop"] for run, base in pairs]
        epoch = statistics.median(run["epoch"] / base["epoch"] for run, base in pairs)
        cpu = statistics.median(run["cpu"] / base["cpu"] for run, base in pairs)
        step_ms = 1000 * statistics.median(run["step"] for run, _ in pairs)
        wait = statistics.median(run["wait"] for run, _ in pairs)
        recorded = statistics.median(run["recorded"] for run, _ in pairs)
        dropped = statistics.median(run["dropped"] for run, _ in pairs)
        seen = "" if name not in variants else (f"{recorded:.0f}/{args.epochs}"
                                                 + (f" ({dropped:.0f} dropped)" if dropped else ""))
        print(f"{name:40s} {statistics.median(loop):6.3f} {min(loop):5.2f}-{max(loop):<5.2f} {epoch:6.3f} "
              f"{cpu:6.3f} {step_ms:9.2f} {wait:7.2f} {seen:>9s}")


if __name__ == "__main__":
    main()
