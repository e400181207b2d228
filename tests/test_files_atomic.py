"""mtlx._files: atomic writes that clean up after killed writers, and .npy/.npz reads that check sizes first."""

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mtlx._files import map_npy, open_npz, read_npz_member, remove_stale_temporaries, write_atomically


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def host() -> str:
    from mtlx._files import _HOST

    return _HOST


def test_writes_arrays_whole(tmp_path):
    write_atomically(tmp_path / "a.npz", {"x": np.arange(3.0), "s": np.array(["a", "bc"])})
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["x"], [0.0, 1.0, 2.0])
        np.testing.assert_array_equal(z["s"], ["a", "bc"])
    write_atomically(tmp_path / "b.npy", {"b": np.eye(2)}, single=True)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy", allow_pickle=False), np.eye(2))
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npy"]


def test_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    """Regression: each killed save left its temporary file for good (10 kills of a 160 MB save: 911 MB)."""
    target = tmp_path / "model.npz"
    dead = dead_pid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = [tmp_path / f".model.npz.{dead}@{host()}.tmp", tmp_path / f".model.npz.{dead}.tmp"]  # now, before
        kept = [
            tmp_path / f".model.npz.{alive.pid}@{host()}.tmp",  # a writer still running
            tmp_path / f".model.npz.{dead}@another-host.tmp",  # a writer on another host: this one cannot tell
            tmp_path / f".other.npz.{dead}@{host()}.tmp",  # another target's
            tmp_path / "model.npz.tmp",  # not a temporary name of mtlx
        ]
        for path in stale + kept:
            path.write_bytes(b"x" * 1000)
        write_atomically(target, {"w": np.ones(2)})
    finally:
        alive.kill()
        alive.wait()
    assert sorted(os.listdir(tmp_path)) == sorted(["model.npz"] + [p.name for p in kept])
    with np.load(target) as z:
        np.testing.assert_array_equal(z["w"], [1.0, 1.0])


def test_remove_stale_temporaries_of_a_missing_folder_does_nothing(tmp_path):
    remove_stale_temporaries(tmp_path / "missing" / "m.npz")
    assert not (tmp_path / "missing").exists()


def test_object_arrays_are_refused_without_leaving_anything(tmp_path):
    """Regression: np.save pickled object arrays (allow_pickle defaulted to True)."""
    with pytest.raises(ValueError, match=r"array 'y' holds Python objects \(dtype object\)"):
        write_atomically(tmp_path / "d.npz", {"X": np.zeros(2), "y": np.array([1, "a"], dtype=object)})
    with pytest.raises(ValueError, match="array 'y' holds Python objects"):
        write_atomically(tmp_path / "y.npy", {"y": np.array([None])}, single=True)
    assert os.listdir(tmp_path) == []


def test_errors_name_the_target_never_the_temporary_file(tmp_path):
    """Regression: a failed write reported (and left) '.NAME.PID.tmp'."""
    with pytest.raises(FileNotFoundError, match=r"cannot write '.*missing/m\.npz': folder '.*missing' does not exist"):
        write_atomically(tmp_path / "missing" / "m.npz", {"w": np.ones(2)})
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_atomically(tmp_path / "taken", {"w": np.ones(2)})
    assert str(info.value) == f"cannot write {str(tmp_path / 'taken')!r}: Is a directory"
    assert info.value.errno is not None and ".tmp" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["taken"]  # the temporary file is gone


def test_an_interrupted_write_removes_its_temporary_file(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    write_atomically(tmp_path / "m.npz", {"w": np.zeros(1)})
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "m.npz", {"w": np.ones(1)})
    assert os.listdir(tmp_path) == ["m.npz"]
    with np.load(tmp_path / "m.npz") as z:
        np.testing.assert_array_equal(z["w"], [0.0])


def test_host_name_is_safe_in_a_file_name():
    assert host() and all(c.isalnum() or c in ".-" for c in host())


# ------------------------------------------------------------------------------ reading
def npz_bytes(**arrays) -> io.BytesIO:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    return buffer


def test_read_npz_member_checks_the_directory_size_first(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(10.0))
    archive, members = open_npz(tmp_path / "a.npz", compressed=False)
    with archive:
        np.testing.assert_array_equal(read_npz_member(archive, members["x"], max_bytes=10_000), np.arange(10.0))
        with pytest.raises(ValueError, match="it takes 208 bytes, more than the 100 its kind can take"):
            read_npz_member(archive, members["x"], max_bytes=100)
        array = read_npz_member(archive, members["x"])
    array[0] = 5.0  # writable, like np.load's arrays
    assert array[0] == 5.0


def test_fortran_and_zero_size_arrays_read_back(tmp_path):
    F = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.savez(tmp_path / "a.npz", F=F, empty=np.zeros((0, 4)))
    archive, members = open_npz(tmp_path / "a.npz", compressed=False)
    with archive:
        np.testing.assert_array_equal(read_npz_member(archive, members["F"]), F)
        assert read_npz_member(archive, members["empty"]).shape == (0, 4)
    for name, array in (("F", F), ("empty", np.zeros((0, 4)))):
        np.save(tmp_path / f"{name}.npy", array)
        with open(tmp_path / f"{name}.npy", "rb") as f:
            mapped = map_npy(f)
        np.testing.assert_array_equal(mapped, array)
        assert mapped.shape == array.shape


def test_a_mapped_array_outlives_its_file(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(5.0))
    with open(tmp_path / "x.npy", "rb") as f:
        mapped = map_npy(f)
    os.unlink(tmp_path / "x.npy")
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, np.arange(5.0))


def test_compressed_members_only_where_allowed(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", x=np.zeros(100))
    archive, members = open_npz(tmp_path / "c.npz", compressed=True)
    with archive:
        np.testing.assert_array_equal(read_npz_member(archive, members["x"]), np.zeros(100))
    with pytest.raises(ValueError, match=r"member 'x.npy' is compressed \(zip method 8\); expected uncompressed"):
        open_npz(tmp_path / "c.npz", compressed=False)


def test_members_that_are_not_arrays_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as zf:
        zf.writestr("x.npy", npz_bytes(x=np.zeros(1)).getvalue())
        zf.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="member 'notes.txt' is not an .npy array"):
        open_npz(tmp_path / "z.npz", compressed=True)
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as zf:
        zf.writestr("x.npy", b"\x93NUMPY garbage header")
    archive, members = open_npz(tmp_path / "d.npz", compressed=False)
    with archive, pytest.raises(ValueError, match=r"not a readable \.npy array"):
        read_npz_member(archive, members["x"])
