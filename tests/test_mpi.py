"""Runs tests/mpi under ``mpiexec -n 2`` and ``-n 3``, and whole jobs that crash or fail.

Every launch has a timeout, so a hang fails the test instead of the CI job.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import mtlx

pytest.importorskip("mpi4py")
HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(BIN)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")
# One thread per rank: ranks are oversubscribed on small machines.
ENV = dict(os.environ, MTLX_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
for key in [k for k in ENV if k.startswith(("PMI_", "OMPI_", "HYDRA_"))]:
    del ENV[key]


def launch(n, *args, timeout=240, mpiexec_args=(), env=None):
    cmd = [MPIEXEC, *mpiexec_args, "-n", str(n), sys.executable, *args] if n else [sys.executable, *args]
    return subprocess.run(cmd, env={**ENV, **(env or {})}, cwd=HERE, capture_output=True, text=True,
                          timeout=timeout)


def test_a_stalled_rank_ends_the_job_after_the_timeout(tmp_path):
    # The last rank sleeps ten minutes before its solve; the others wait in the solve's first
    # collective and must end the job after MTLX_MPI_TIMEOUT seconds, saying why.
    start = time.monotonic()
    proc = launch(3, str(HERE / "scripts" / "mpi_fit.py"), "stall", str(tmp_path), str(tmp_path / "W.npy"),
                  timeout=120, env={"MTLX_MPI_TIMEOUT": "3"})
    assert proc.returncode != 0 and time.monotonic() - start < 90
    assert re.search(r"mtlx: rank [01] of 3 waited 3 s in .*: another rank is stalled or died", proc.stderr)


# On 3 ranks, the modules whose results depend on the number of ranks (sums in another order, each
# rank's share of the tasks, checkpoints across counts) and the failures (one rank failing, two
# waiting); the rest (the CLI's and the device emulation's plumbing, the gap's collectives) is the
# same code on 2 ranks, and CI's 20 minutes are tight.
_ON_THREE_RANKS = ("test_equality.py", "test_checkpoint.py", "test_shared_trunk.py", "test_failures.py")


@pytest.mark.parametrize("n_ranks", [2, 3])
def test_mpi_suite(n_ranks):
    modules = [HERE / "mpi" / name for name in _ON_THREE_RANKS] if n_ranks == 3 else [HERE / "mpi"]
    # MTLX_MPI_SUITE_IGNORE: modules (space-separated names) the sanitizer job leaves out.
    ignored = [f"--ignore={HERE / 'mpi' / name}" for name in os.environ.get("MTLX_MPI_SUITE_IGNORE", "").split()]
    proc = launch(n_ranks, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, modules), *ignored)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "passed" in proc.stdout and "failed" not in proc.stdout


def _uninterrupted():
    sys.path.insert(0, str(HERE / "scripts"))
    rng = np.random.default_rng(5)
    sizes = rng.integers(20, 60, 20)
    tasks = [(rng.standard_normal((m, 8)), rng.standard_normal(m)) for m in sizes]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = mtlx.solve(mtlx.TaskData.from_tasks(tasks), penalty="trace", alpha=0.05, l2=0.05,
                         fit_intercept=True, tol=1e-12, max_iter=5000)
    return np.concatenate([res.W, res.b[None, :]])


@pytest.mark.parametrize("killed, resumed", [(0, 0), (2, 3)], ids=["one-process", "2-ranks-then-3"])
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(tmp_path, killed, resumed):
    script, ck, out = str(HERE / "scripts" / "mpi_fit.py"), str(tmp_path / "ck"), str(tmp_path / "W.npy")
    proc = launch(killed, script, "kill", ck, out)
    assert proc.returncode != 0 and not os.path.exists(out)  # really killed
    with np.load(os.path.join(ck, "checkpoint.npz")) as z:
        assert int(z["n_iter"]) == 20
    proc = launch(resumed, script, "resume", ck, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    W, ref = np.load(out), _uninterrupted()
    err = np.abs(W - ref).max() / np.abs(ref).max()
    assert err < 1e-10


def test_nan_on_one_rank_fails_every_rank_with_the_same_error(tmp_path):
    # One stderr file per rank (Hydra's -errfile-pattern): the ranks' writes to one pipe interleave.
    proc = launch(3, str(HERE / "scripts" / "mpi_fit.py"), "nan", str(tmp_path), str(tmp_path / "W.npy"), timeout=120,
                  mpiexec_args=("-errfile-pattern", str(tmp_path / "err.%r")))
    assert proc.returncode != 0
    found = []
    for rank in range(3):
        text = (tmp_path / f"err.{rank}").read_text()
        found += re.findall(r"ValueError: task 17: X contains NaN \(row \d+\); inputs must be finite "
                            r"\[raised on rank \d+ of 3\]", text)
    assert len(found) == 3 and len(set(found)) == 1, found  # one per rank, all the same


@pytest.mark.parametrize("how", ["python -m mpi4py", "abort_on_unhandled_exception", "import mtlx"])
def test_unhandled_exception_on_one_rank_aborts_the_job(tmp_path, how):
    # "import mtlx": the pattern most users write first (the rank's TaskData built outside
    # agreed_errors, nothing else) must not leave the other ranks in a collective for ever.
    script = str(HERE / "scripts" / "mpi_fit.py")
    args = {"python -m mpi4py": ["-m", "mpi4py", script, "nan-abort"], "abort_on_unhandled_exception":
            [script, "nan-hook"], "import mtlx": [script, "nan-plain"]}[how]
    proc = launch(3, *args, str(tmp_path), str(tmp_path / "W.npy"), timeout=120)
    assert proc.returncode != 0
    assert "task 17: X contains NaN" in proc.stderr


def test_shared_trunk_checkpoint_of_2_ranks_resumes_on_3_with_one_process_bits(tmp_path):
    script, ck = str(HERE / "scripts" / "mpi_trunk.py"), str(tmp_path / "ck")
    proc = launch(2, script, "first", ck, str(tmp_path / "first.npy"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = launch(3, script, "resume", ck, str(tmp_path / "resumed.npy"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = launch(0, script, "whole", ck, str(tmp_path / "whole.npy"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "whole.npy"))


_CUDA_AWARE = """
import ctypes
from mpi4py import MPI
import mtlx.distributed as dist
answer = dist.cuda_aware_mpi()
library = ctypes.CDLL(dist._loaded_mpi_libraries()[0])
supported = ctypes.c_int(-1)
assert library.MPIX_GPU_query_support(0, ctypes.byref(supported)) == 0  # 0: MPIX_GPU_SUPPORT_CUDA
print(int(answer), supported.value)
"""


@pytest.mark.parametrize("setting, expected", [(None, None), ("auto", None), ("1", 1), ("on", 1), ("0", 0),
                                               ("off", 0)])
def test_cuda_aware_mpi_is_asked_of_the_library_unless_forced(setting, expected):
    """Unset or auto: the loaded MPI's own answer (the bundled MPICH: built without CUDA, so 0),
    checked against its other query, MPIX_GPU_query_support; MTLX_CUDA_AWARE_MPI forces either way."""
    env = {} if setting is None else {"MTLX_CUDA_AWARE_MPI": setting}
    run = launch(0, "-c", _CUDA_AWARE, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    answer, library = map(int, run.stdout.split())
    assert library in (0, 1)
    assert answer == (library if expected is None else expected)


def test_a_bad_cuda_aware_setting_is_named():
    run = launch(0, "-c", "import mtlx.distributed as d; d.cuda_aware_mpi()", env={"MTLX_CUDA_AWARE_MPI": "maybe"},
                 timeout=60)
    assert run.returncode != 0
    assert "MTLX_CUDA_AWARE_MPI must be 1/yes/true/on, 0/no/false/off or auto, got 'maybe'" in run.stderr
