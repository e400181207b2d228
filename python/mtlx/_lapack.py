"""Hands SciPy's BLAS/LAPACK entry points to the core (see cpp/include/mtlx/lapack.hpp).

SciPy exports its Fortran-ABI routines as PyCapsules in ``scipy.linalg.cython_blas`` and
``scipy.linalg.cython_lapack``; reusing them means building mtlx needs no system LAPACK and
the core runs the same optimized library as numpy/scipy users already have.
"""

from __future__ import annotations

from . import _core

_BLAS = ("dgemm", "sgemm", "dsyrk", "ssyrk")
_LAPACK = ("dgesdd", "sgesdd")


def register() -> None:
    """Register every routine the core needs; idempotent."""
    if _core.lapack_ready():
        return
    from scipy.linalg import cython_blas, cython_lapack

    for module, names in ((cython_blas, _BLAS), (cython_lapack, _LAPACK)):
        for name in names:
            capsule = module.__pyx_capi__[name]
            _core.set_routine(name, capsule)
