"""mtlx.io: datasets on disk in both layouts, as .npz or a memory-mapped folder."""

import numpy as np
import pytest

import mtlx
from mtlx.io import DatasetFile, load_dataset, save_dataset, task_sizes

from conftest import make_tasks


def assert_same_tasks(a, b):
    assert a.layout == b.layout and a.n_tasks == b.n_tasks
    np.testing.assert_array_equal(a.task_ids, b.task_ids)
    for t in range(a.n_tasks):
        for x, y in zip(a.task(t), b.task(t)):
            np.testing.assert_array_equal(x, y)


@pytest.fixture
def stacked(rng):
    return mtlx.TaskData.from_tasks(make_tasks(rng, [7, 1, 12, 5], 3), task_ids=[4, 9, 2, 30])


@pytest.fixture
def shared(rng):
    return mtlx.TaskData.from_shared(rng.standard_normal((9, 3)), rng.standard_normal((9, 4)), task_ids=[5, 6, 7, 8])


@pytest.mark.parametrize("name", ["data.npz", "folder"])
def test_round_trip_and_task_subsets(tmp_path, stacked, shared, name):
    for data in (stacked, shared):
        path = tmp_path / data.layout / name
        path.parent.mkdir()
        save_dataset(path, data)
        back = load_dataset(path)
        order = np.argsort(data.task_ids)  # stacked data comes back by sorted task id
        if data.layout == "shared":
            order = np.arange(data.n_tasks)
        expected = mtlx.TaskData.from_tasks([data.task(t) for t in order], task_ids=data.task_ids[order]) \
            if data.layout == "stacked" else data
        assert_same_tasks(back, expected)
        ids, sizes = task_sizes(path)
        np.testing.assert_array_equal(ids, expected.task_ids)
        np.testing.assert_array_equal(sizes, expected.n_samples)
        subset = load_dataset(path, tasks=[data.task_ids[2], data.task_ids[0]])
        positions = {tid: t for t, tid in enumerate(data.task_ids)}
        for t, tid in enumerate(subset.task_ids):
            for x, y in zip(subset.task(t), data.task(positions[tid])):
                np.testing.assert_array_equal(x, y)


def test_folder_is_memory_mapped(tmp_path, stacked):
    save_dataset(tmp_path / "d", stacked)
    with DatasetFile(tmp_path / "d") as ds:
        assert isinstance(ds["X"], np.memmap) and ds.layout == "stacked"


def test_clear_errors(tmp_path, stacked):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nothing.npz")
    np.savez(tmp_path / "noy.npz", X=np.zeros((3, 2)), task=np.zeros(3))
    with pytest.raises(ValueError, match="missing array 'y'"):
        load_dataset(tmp_path / "noy.npz")
    np.savez(tmp_path / "nox.npz", Y=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="missing array 'X'"):
        load_dataset(tmp_path / "nox.npz")
    np.savez(tmp_path / "short.npz", X=np.zeros((3, 2)), y=np.zeros(3), task=np.zeros(2))
    with pytest.raises(ValueError, match=r"short.npz.*task has shape \(2,\)"):
        load_dataset(tmp_path / "short.npz")
    np.savez(tmp_path / "ybad.npz", X=np.zeros((3, 2)), y=np.zeros(4), task=np.zeros(3))
    with pytest.raises(ValueError, match="ybad.npz"):
        load_dataset(tmp_path / "ybad.npz")
    save_dataset(tmp_path / "ok.npz", stacked)
    with pytest.raises(ValueError, match="task id 3 is not in the dataset"):
        load_dataset(tmp_path / "ok.npz", tasks=[4, 3])
    with pytest.raises(TypeError, match="TaskData"):
        save_dataset(tmp_path / "x.npz", np.zeros(3))
