"""mtlx.io: datasets on disk in both layouts, as .npz or a memory-mapped folder."""

import errno
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mtlx
import mtlx.cli
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
    with pytest.raises(ValueError, match=r"X must be 2-D, got shape \(3,\)"):
        save_dataset(tmp_path / "x.npz", np.zeros(3))


def write_arrays(path, **arrays):
    """A dataset written by hand, unchecked: an .npz file, or a folder of plain .npy files."""
    if path.suffix == ".npz":
        np.savez(path, **arrays)
        return
    path.mkdir()
    for name, array in arrays.items():
        np.save(path / f"{name}.npy", array)


@pytest.mark.parametrize("name", ["d.npz", "d"])
def test_loading_some_tasks_checks_what_a_full_load_checks(tmp_path, name):
    """Regression: with tasks=, y shorter than X loaded silently (or ended in IndexError)."""
    path = tmp_path / name
    write_arrays(path, X=np.zeros((6, 2)), y=np.arange(5.0), task=np.array([0, 0, 1, 1, 2, 2]))
    for tasks in (None, [0], [2]):
        with pytest.raises(ValueError, match=r"X has shape \(6, 2\) and y has shape \(5,\): one target per row"):
            load_dataset(path, tasks=tasks)
    with pytest.raises(ValueError, match=r"y has shape \(5,\)"):
        task_sizes(path)


@pytest.mark.parametrize("name", ["d.npz", "d"])
def test_one_dimensional_Y_is_a_value_error(tmp_path, name):
    """Regression: a 1-D Y ended in IndexError (and a traceback from the CLI)."""
    path = tmp_path / name
    write_arrays(path, X=np.zeros((4, 2)), Y=np.zeros(4))
    message = r"Y must be 2-D \(n_samples, n_tasks\), got shape \(4,\)"
    for read in (load_dataset, task_sizes, lambda p: DatasetFile(p).task_ids(), lambda p: load_dataset(p, tasks=[0])):
        with pytest.raises(ValueError, match=message):
            read(path)
    assert mtlx.cli.main(["info", str(path)]) == 1


@pytest.mark.parametrize(("arrays", "message"), [
    (dict(X=np.zeros(4), Y=np.zeros((4, 1))), r"X must be 2-D \(n_samples, n_features\), got shape \(4,\)"),
    (dict(X=np.zeros((4, 2)), Y=np.zeros((3, 2))), r"X has shape \(4, 2\) and Y has shape \(3, 2\)"),
    (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 0))), r"Y has shape \(4, 0\): Y needs one row per row of X and at"),
    (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 2, 1))), r"Y must be 2-D .*got shape \(4, 2, 1\)"),
    (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 2)), task_ids=np.array([1, 2, 3])),
     r"task_ids has shape \(3,\) but Y has 2 columns"),
    (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 2)), task_ids=np.array([[1, 2]])),
     r"task_ids must be 1-D \(one id per task\), got shape \(1, 2\)"),
    (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 2)), task_ids=np.array([7, 7])), "task_ids holds an id more than once"),
    (dict(X=np.zeros((4, 2)), y=np.zeros(4), task=np.zeros((4, 1))), r"task has shape \(4, 1\): one task id per row"),
    (dict(X=np.zeros((4, 2)), y=np.zeros((4, 2)), task=np.zeros(4)), r"y has shape \(4, 2\): one target per row"),
    (dict(X=np.zeros((4, 2)), y=np.zeros(4), task=np.array([0.0, np.nan, 1.0, 1.0])), "task contains NaN or infinity"),
    (dict(X=np.zeros((4, 2)), y=np.zeros(4), task=np.zeros(4, dtype=complex)), "task has dtype complex128; task ids"),
])
@pytest.mark.parametrize("name", ["d.npz", "d"])
def test_malformed_shapes_name_the_array_and_its_shape(tmp_path, name, arrays, message):
    path = tmp_path / name
    write_arrays(path, **arrays)
    for tasks in (None, [0]):
        with pytest.raises(ValueError, match=re.escape(f"dataset {str(path)!r}: ") + ".*" + message) as info:
            load_dataset(path, tasks=tasks)
        assert str(info.value).count("dataset '") == 1


def test_duplicate_task_ids_are_refused_when_loading_some_tasks(tmp_path):
    """Regression: a subset load never checked task_ids for duplicates (a full load did, in TaskData)."""
    write_arrays(tmp_path / "d.npz", X=np.zeros((3, 2)), Y=np.arange(6.0).reshape(3, 2), task_ids=np.array([4, 4]))
    with pytest.raises(ValueError, match="task_ids holds an id more than once"):
        load_dataset(tmp_path / "d.npz", tasks=[4])


def test_messages_name_the_dataset_once(tmp_path):
    """Regression: 'dataset 'x': dataset 'x': missing array ...'."""
    write_arrays(tmp_path / "d.npz", X=np.zeros((3, 2)), task=np.zeros(3))
    with pytest.raises(ValueError, match="missing array 'y'") as info:
        load_dataset(tmp_path / "d.npz")
    assert str(info.value).count(str(tmp_path / "d.npz")) == 1
    write_arrays(tmp_path / "nan.npz", X=np.array([[0.0, 1.0], [np.nan, 2.0]]), y=np.zeros(2), task=np.zeros(2))
    with pytest.raises(ValueError, match=r"nan\.npz': task 0\.0: X contains NaN \(row 1\)") as info:
        load_dataset(tmp_path / "nan.npz")
    assert str(info.value).count("nan.npz") == 1
    with pytest.raises(ValueError, match=r"tasks must be a 1-D list of task ids, got shape \(1, 2\)"):
        load_dataset(tmp_path / "nan.npz", tasks=[[0, 1]])


@pytest.mark.parametrize("content", [b"not a dataset", b"", bytes(range(256)) * 8], ids=["text", "empty", "binary"])
def test_a_junk_file_is_not_a_dataset(tmp_path, content):
    """Regression: numpy's hint to load pickles with allow_pickle=True was the message."""
    (tmp_path / "junk.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"junk\.npz': not a readable \.npz file \(not a zip file") as info:
        load_dataset(tmp_path / "junk.npz")
    assert "pickle" not in str(info.value)


def test_pickled_arrays_and_single_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "objects.npz", X=np.zeros((2, 2)), Y=np.array([[1, "a"], [2, None]], dtype=object))
    with pytest.raises(ValueError, match="array 'Y' cannot be read: it holds Python objects") as info:
        load_dataset(tmp_path / "objects.npz")
    assert "allow_pickle" not in str(info.value)
    np.save(tmp_path / "X.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"a single \.npy array, not an \.npz archive"):
        load_dataset(tmp_path / "X.npy")
    folder = tmp_path / "folder"
    folder.mkdir()
    np.save(folder / "X.npy", np.zeros((3, 2)))
    np.save(folder / "Y.npy", np.zeros((3, 1)))
    (folder / "Y.npy").write_bytes((folder / "Y.npy").read_bytes()[:-8])  # one value short
    with pytest.raises(ValueError, match=r"array 'Y' cannot be read: its header describes a float64 array of shape "
                                         r"\(3, 1\) \(24 bytes\) but 16 bytes of data follow it"):
        load_dataset(folder)


# ------------------------------------------------------------------------------ labels and raw arrays
@pytest.mark.parametrize("name", ["d.npz", "d"])
def test_string_labels_round_trip_to_an_estimator(tmp_path, rng, name):
    """Regression: save_dataset took a TaskData only, which holds numbers: string labels could not be saved."""
    X = rng.standard_normal((60, 3))
    task = np.repeat(["north", "south", "east"], 20)
    y = np.where(X[:, 0] + 0.3 * rng.standard_normal(60) > 0, "spam", "ham")
    save_dataset(tmp_path / name, X, y, task=task)
    with DatasetFile(tmp_path / name) as ds:
        arrays = ds.read()
        assert ds.layout == "stacked" and sorted(arrays) == ["X", "task", "y"]
        np.testing.assert_array_equal(arrays["X"], X)
        np.testing.assert_array_equal(arrays["y"], y)
        np.testing.assert_array_equal(arrays["task"], task)
        part = ds.read(tasks=["south"])
        np.testing.assert_array_equal(part["y"], y[20:40])
        np.testing.assert_array_equal(part["X"], X[20:40])
        np.testing.assert_array_equal(part["task"], task[20:40])
    model = mtlx.MultiTaskClassifier(alpha=0.01).fit(arrays["X"], arrays["y"], task=arrays["task"])
    direct = mtlx.MultiTaskClassifier(alpha=0.01).fit(X, y, task=task)
    np.testing.assert_array_equal(model.coef_, direct.coef_)
    assert [list(c) for c in model.classes_] == [["ham", "spam"]] * 3
    with pytest.raises(TypeError, match=r"y holds labels of dtype <U4, but a TaskData holds numbers only"):
        load_dataset(tmp_path / name)


def test_shared_labels_and_task_ids_round_trip(tmp_path, rng):
    X = rng.standard_normal((30, 2))
    Y = np.where(rng.standard_normal((30, 3)) > 0, "yes", "no")
    save_dataset(tmp_path / "d", X, Y, task_ids=["a", "b", "c"])
    with DatasetFile(tmp_path / "d") as ds:
        np.testing.assert_array_equal(ds.read()["Y"], Y)
        part = ds.read(tasks=["c", "a"])
    np.testing.assert_array_equal(part["Y"], Y[:, [2, 0]])
    np.testing.assert_array_equal(part["task_ids"], ["c", "a"])
    save_dataset(tmp_path / "one.npz", X, X[:, 0] * 2.0)  # a 1-D y without task: one task
    one = load_dataset(tmp_path / "one.npz")
    assert one.layout == "shared" and one.n_tasks == 1
    np.testing.assert_array_equal(one.Y[:, 0], X[:, 0] * 2.0)
    save_dataset(tmp_path / "inputs.npz", X)  # inputs only, for predict
    with DatasetFile(tmp_path / "inputs.npz") as ds:
        assert ds.names == ["X"] and ds.layout == "shared"


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((np.zeros((3, 2)), np.array([1, "a", None], dtype=object)), {"task": [0, 0, 1]}, TypeError,
     "y has object dtype; targets must be numbers or labels"),
    ((np.array([[0.0, 1.0], [1.0, 2.0], [np.inf, 0.0]]), np.zeros(3)), {"task": [0, 0, 1]}, ValueError,
     r"X contains infinity \(row 2\)"),
    ((np.zeros((3, 2)), np.array([0.0, np.nan, 1.0])), {"task": [0, 0, 1]}, ValueError, r"y contains NaN \(row 1\)"),
    ((np.zeros((3, 2)), np.zeros(4)), {"task": [0, 0, 1]}, ValueError, r"y has shape \(4,\): with task, y holds one"),
    ((np.zeros((3, 2)), np.zeros(3)), {"task": [[0, 0, 1]]}, ValueError, r"task has shape \(1, 3\), expected \(3,\)"),
    ((np.zeros((3, 2)), np.zeros(3)), {"task": [0, 0, 1], "task_ids": [0, 1]}, ValueError,
     "task_ids names the columns of a 2-D y"),
    ((np.zeros((3, 2)), np.zeros((2, 2))), {}, ValueError, r"y has shape \(2, 2\): without task, y holds one row per"),
    ((np.zeros((3, 2)), np.zeros((3, 2))), {"task_ids": [5, 5]}, ValueError, "task_ids holds an id more than once"),
    ((np.zeros((3, 2)), np.zeros((3, 2))), {"task_ids": [5]}, ValueError,
     r"task_ids has shape \(1,\), expected \(2,\)"),
    ((mtlx.TaskData.from_shared(np.zeros((3, 2)), np.zeros((3, 1))), np.zeros(3)), {}, ValueError,
     "y, task, task_ids and sample_weight must be None when X is a TaskData"),
    (("not numbers",), {}, TypeError, "X has <U11 dtype"),
])
def test_save_dataset_checks_what_it_writes(tmp_path, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        save_dataset(tmp_path / "d", *args, **kwargs)
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------ atomic folders
def version_folders(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def test_an_open_dataset_keeps_reading_its_version(tmp_path, rng, stacked, shared):
    """Regression: re-saving a folder while a reader had it open gave the reader y of the new version
    beside X of the old one (the arrays were opened one by one, by name, on first use)."""
    folder = tmp_path / "d"
    save_dataset(folder, stacked)
    with DatasetFile(folder) as reader:
        first_X = np.array(reader["X"])
        save_dataset(folder, shared)  # another layout, other shapes
        assert reader.layout == "stacked"
        back = load_dataset(folder)  # a new reader sees the new version
        np.testing.assert_array_equal(reader["X"], first_X)
        np.testing.assert_array_equal(reader["y"], stacked.y)
        np.testing.assert_array_equal(reader["task"], np.repeat(stacked.task_ids, stacked.n_samples))
    assert_same_tasks(back, shared)
    assert sorted(os.listdir(folder)) == [".lock", "current", os.readlink(folder / "current")]
    assert os.listdir(folder / "current") and sorted(os.listdir(folder / "current")) == ["X.npy", "Y.npy",
                                                                                          "task_ids.npy"]


def test_a_plain_folder_still_loads_and_switches_to_versions(tmp_path, stacked):
    folder = tmp_path / "plain"
    write_arrays(folder, X=stacked.X, y=stacked.y, task=np.repeat(stacked.task_ids, stacked.n_samples))
    (folder / "notes.txt").write_text("kept")
    assert_same_tasks(load_dataset(folder), load_dataset_reference(stacked))
    dead = dead_pid()
    (folder / f".y.npy.{dead}.tmp").write_bytes(b"left by a killed writer of an earlier mtlx")
    live = folder / f".y.npy.{os.getpid()}.tmp"
    live.write_bytes(b"a live writer's")
    new = mtlx.TaskData.from_shared(stacked.X[:5], stacked.X[:5, :2] * 3.0)
    save_dataset(folder, new)
    assert sorted(os.listdir(folder)) == sorted([".lock", "current", os.readlink(folder / "current"), "notes.txt",
                                                 live.name])
    assert_same_tasks(load_dataset(folder), new)


def load_dataset_reference(data):
    """``data`` with its tasks in the order a stacked load puts them (sorted ids)."""
    order = np.argsort(data.task_ids)
    return mtlx.TaskData.from_tasks([data.task(t) for t in order], task_ids=data.task_ids[order])


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_leftovers_of_killed_writers_are_invisible_and_removed(tmp_path, stacked, shared):
    folder = tmp_path / "d"
    save_dataset(folder, stacked)
    current = os.readlink(folder / "current")
    (folder / ".v-0123456789abcdef.tmp").mkdir()  # killed while writing
    np.save(folder / ".v-0123456789abcdef.tmp" / "X.npy", np.ones((2, 2)))
    (folder / "v-fedcba9876543210").mkdir()  # killed after naming its version, before the switch
    np.save(folder / "v-fedcba9876543210" / "X.npy", np.ones((2, 2)))
    (folder / ".v-00000000000000ff.old").mkdir()  # killed while deleting an old version
    os.symlink("v-fedcba9876543210", folder / ".current.tmp")
    assert_same_tasks(load_dataset(folder), load_dataset_reference(stacked))
    save_dataset(folder, shared)
    new = os.readlink(folder / "current")
    assert new != current and sorted(os.listdir(folder)) == sorted([".lock", "current", new])
    assert_same_tasks(load_dataset(folder), shared)


@pytest.mark.parametrize(("target", "message"), [
    ("v-0000000000000000", "'current' links to 'v-0000000000000000', which does not exist"),
    ("../elsewhere", "'current' in .* links to '../elsewhere', not to a version save_dataset writes"),
])
def test_a_broken_link_is_a_clear_error(tmp_path, stacked, target, message):
    folder = tmp_path / "d"
    save_dataset(folder, stacked)
    os.unlink(folder / "current")
    os.symlink(target, folder / "current")
    with pytest.raises(ValueError, match=message):
        load_dataset(folder)


def test_saving_a_folder_over_a_file_is_refused(tmp_path, stacked):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(FileExistsError, match=r"cannot write dataset .*taken': it is a file, not a folder"):
        save_dataset(tmp_path / "taken", stacked)
    assert (tmp_path / "taken").read_text() == "a file"


def test_a_failed_folder_write_keeps_the_old_version_and_names_the_folder(tmp_path, stacked, shared, monkeypatch):
    folder = tmp_path / "d"
    save_dataset(folder, stacked)
    version = os.readlink(folder / "current")
    real_save, calls = np.save, []

    def disk_full_at_the_second_array(f, array, **kwargs):
        calls.append(f.name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", f.name)
        real_save(f, array, **kwargs)

    monkeypatch.setattr(np, "save", disk_full_at_the_second_array)
    with pytest.raises(OSError, match=r"^cannot write '.*d': No space left on device$") as info:
        save_dataset(folder, shared)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and ".tmp" in calls[0] and ".tmp" not in str(info.value)
    assert sorted(os.listdir(folder)) == sorted([".lock", "current", version])
    assert_same_tasks(load_dataset(folder), load_dataset_reference(stacked))
