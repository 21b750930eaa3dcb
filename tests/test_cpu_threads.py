"""CPU threading: the compute pool runs sequential BLAS whatever thread settings the user made,
and the user's settings are the same after an analysis as before it.

Each case runs in a fresh process: torch's thread settings are per process (and per thread),
and torch initialises a thread's counts only once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_CHILD = r"""
import json, sys, threading, torch
from torch import nn
variant = sys.argv[1]
if variant == "torch.set_num_threads":
    torch.set_num_threads(3)
import farms_viz
from farms_viz.engine.cpu_threads import blas_threads, compute_pool

def settings():
    return [torch.get_num_threads(), *blas_threads()]

def in_fresh_thread():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(settings()))
    thread.start()
    thread.join()
    return seen[0]

def in_pool():
    torch.ones(1 << 20).sum()  # a parallel op: torch's lazy per-thread initialisation has run
    return settings()

before = {"main": settings(), "fresh": in_fresh_thread()}
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(300, 200), nn.Linear(200, 300))
farms_viz.analyze(model, window=64, progress=False)
pool = [compute_pool().submit(in_pool).result() for _ in range(8)]
after = {"main": settings(), "fresh": in_fresh_thread()}
print(json.dumps({"before": before, "after": after, "pool": pool}))
"""

# variant -> environment it runs with. torch.set_num_threads(3): a count no default gives (torch
# caps the environment's counts at the cores, so those variants ask for 1).
VARIANTS = {
    "torch.set_num_threads": {},
    "OMP_NUM_THREADS": {"OMP_NUM_THREADS": "1"},
    "MKL_NUM_THREADS": {"MKL_NUM_THREADS": "1"},
}


def run_child(variant: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(VARIANTS[variant])
    out = subprocess.run([sys.executable, "-c", _CHILD, variant], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=[
    "torch.set_num_threads",  # the case that once made FARMS 2x slower: not marked slow
    pytest.param("OMP_NUM_THREADS", marks=pytest.mark.slow),
    pytest.param("MKL_NUM_THREADS", marks=pytest.mark.slow)])
def child(request):
    return request.param, run_child(request.param)


def test_the_users_setting_took_effect(child):
    variant, seen = child
    torch_threads, omp, mkl = seen["before"]["main"]
    if variant == "torch.set_num_threads":
        assert torch_threads == 3 and omp in (3, None) and mkl in (3, None)
    elif variant == "OMP_NUM_THREADS":
        assert torch_threads == 1 and omp in (1, None)
    else:
        assert torch_threads == 1 and mkl in (1, None)


def test_users_setting_unchanged_in_their_thread_and_a_fresh_one(child):
    _, seen = child
    assert seen["after"]["main"] == seen["before"]["main"]
    assert seen["after"]["fresh"] == seen["before"]["fresh"]


def test_pool_threads_run_sequential_blas_after_a_parallel_op(child):
    _, seen = child
    for torch_threads, omp, mkl in seen["pool"]:
        assert torch_threads == 1
        assert omp in (1, None) and mkl in (1, None)
