"""Writers killed by SIGKILL in the middle of a write: models, dataset folders, checkpoints.

Each test starts a real writer process, waits until its temporary file holds data, kills it
with SIGKILL and checks what is on disk: the target is still a whole version (the old one, as
the writer never got to rename), and the next write to the same target removes what the
killed writer left behind.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import mtlx
from mtlx.io import DatasetFile, load_dataset, save_dataset

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def kill_while_writing(script: str, folder, patterns) -> list:
    """Run ``script`` in a new interpreter and SIGKILL it once a new file matching one of ``patterns``
    (globs under ``folder``) holds data; returns the files matching them after the kill."""
    earlier = matches(folder, patterns)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(size_of(path) for path in matches(folder, patterns) - earlier):
            if writer.poll() is not None:
                pytest.fail(f"the writer ended (status {writer.returncode}) before it could be killed mid-write:\n"
                            f"{writer.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("the writer wrote nothing within 120 s")
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()  # reaped: its pid is no longer alive
    assert writer.returncode == -signal.SIGKILL
    return sorted(matches(folder, patterns))


def matches(folder, patterns) -> set:
    return {path for pattern in patterns for path in folder.glob(pattern)}


def size_of(path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed or removed meanwhile
        return 0


def test_killed_model_saves_leave_the_old_model_and_no_leftovers(tmp_path, rng):
    """Regression: every killed save left its temporary file for good."""
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 2))
    old = mtlx.MultiTaskRegressor(alpha=0.1).fit(X, Y)
    path = tmp_path / "m.npz"
    mtlx.save(old, path)
    big_model = f"""
        import numpy as np
        import mtlx
        model = mtlx.MultiTaskRegressor()
        T, d = 32, 1 << 20  # coef_ of 256 MiB: a save that lasts long enough to be interrupted
        model.coef_, model.intercept_, model.tasks_ = np.ones((T, d)), np.zeros(T), np.arange(T)
        model.n_tasks_, model.n_features_in_, model.n_iter_, model.fit_layout_ = T, d, 0, "shared"
        model.objective_history_ = np.zeros(1)
        mtlx.save(model, {str(path)!r})
    """
    seen = set()
    for _ in range(2):
        leftovers = kill_while_writing(big_model, tmp_path, [".m.npz.*.tmp"])
        # Only the last writer's: each writer removes the leftovers of the dead ones before it.
        assert len(leftovers) == 1 and leftovers[0].name not in seen
        seen.add(leftovers[0].name)
        loaded = mtlx.load(path)
        assert loaded.coef_.shape == (2, 3)  # the old model (the new one is 32 x 2^20), whole
        np.testing.assert_array_equal(loaded.predict(X), old.predict(X))
    new = mtlx.MultiTaskRegressor(alpha=0.2).fit(X, Y)
    mtlx.save(new, path)
    assert os.listdir(tmp_path) == ["m.npz"]
    np.testing.assert_array_equal(mtlx.load(path).coef_, new.coef_)


def test_a_killed_folder_save_never_mixes_versions(tmp_path, rng):
    """Regression: SIGKILL while y was being written left X of the new version beside y of the old one,
    which loaded without error."""
    folder = tmp_path / "d"
    old = mtlx.TaskData.from_tasks([(rng.standard_normal((10, 2)), rng.standard_normal(10)) for _ in range(3)])
    save_dataset(folder, old)
    n = 1 << 24  # X, y and task of 128 MiB each: killed while y, after X, is being written
    new_version = f"""
        import numpy as np
        import mtlx
        from mtlx.io import save_dataset
        save_dataset({str(folder)!r}, mtlx.TaskData.from_stacked(np.ones(({n}, 1)), np.ones({n}), np.zeros({n})))
    """
    leftovers = kill_while_writing(new_version, folder, [".v-*.tmp/y.npy", ".y.npy.*.tmp"])
    assert leftovers
    back = load_dataset(folder)  # the old version, every array of it
    assert back.n_tasks == 3 and back.n_features == 2
    for t in range(3):
        for got, expected in zip(back.task(t), old.task(t)):
            np.testing.assert_array_equal(got, expected)
    newest = mtlx.TaskData.from_shared(rng.standard_normal((5, 4)), rng.standard_normal((5, 2)))
    save_dataset(folder, newest)
    version = os.readlink(folder / "current")
    assert sorted(os.listdir(folder)) == sorted([".lock", "current", version])
    with DatasetFile(folder) as ds:
        np.testing.assert_array_equal(ds["X"], newest.X)
        np.testing.assert_array_equal(ds["Y"], newest.Y)


def test_a_killed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, rng):
    folder = tmp_path / "ckpt"
    small = mtlx.TaskData.from_shared(rng.standard_normal((20, 3)), rng.standard_normal((20, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        mtlx.solve(small, penalty="l21", alpha=0.01, tol=0.0, max_iter=3, checkpoint=folder, checkpoint_every=1)
    big_problem = f"""
        import warnings
        import numpy as np
        import mtlx
        rng = np.random.default_rng(0)
        data = mtlx.TaskData.from_shared(rng.standard_normal((8, 1 << 10)), rng.standard_normal((8, 1 << 13)))
        warnings.simplefilter("ignore")
        mtlx.solve(data, penalty="l21", alpha=1e-3, tol=0.0, max_iter=5, checkpoint={str(folder)!r},
                   checkpoint_every=1)
    """
    assert kill_while_writing(big_problem, folder, [".checkpoint.npz.*.tmp"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mtlx.ConvergenceWarning)
        # Resuming checks the checkpoint's fingerprint: it must still be the small problem's, whole.
        resumed = mtlx.solve(small, penalty="l21", alpha=0.01, tol=0.0, max_iter=5, checkpoint=folder,
                             checkpoint_every=1, resume=True)
        uninterrupted = mtlx.solve(small, penalty="l21", alpha=0.01, tol=0.0, max_iter=5, solver="fista")
    assert resumed.n_iter == 5
    np.testing.assert_allclose(resumed.W, uninterrupted.W, rtol=1e-12, atol=1e-14)
    assert os.listdir(folder) == ["checkpoint.npz"]  # the resumed run's writes removed the leftover
