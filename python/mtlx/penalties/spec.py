"""Penalties as text and as plain data: the CLI's spec strings and what ``mtlx.save`` stores.

A spec string is the Python expression that builds the penalty, restricted to penalty
constructors, numbers, ``+`` and (for Graph's R) a file name::

    l21                                        a registered name (the same as "L21()")
    L1(0.5) + L21(1)                           sparse group lasso
    Superpose(Trace(1000), L21Columns(500))    robust MTL
    Graph('edges.npz', 100) + L1(100)          SRMTL; R read from .npy (dense) or .npz (scipy.sparse)
    Clustered(k=3, eta=0.1, w=100)             convex clustered MTL

It is parsed with :mod:`ast` (nothing is evaluated), and ``repr`` of a penalty gives it back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from .base import Penalty, Sum, Superpose, registered

__all__ = ["from_data", "parse", "to_data"]


def _classes() -> dict:
    """The package's public penalty classes by name (what a spec string may call)."""
    import mtlx.penalties as package

    found = {name: getattr(package, name) for name in package.__all__}
    return {name: obj for name, obj in found.items()
            if isinstance(obj, type) and issubclass(obj, Penalty) and obj is not Penalty}


def parse(text: str) -> Penalty:
    """The penalty a spec string describes (see the module docstring).

    Raises
    ------
    ValueError
        Naming what could not be understood and listing what is accepted.
    """
    if not isinstance(text, str):
        raise TypeError(f"a penalty spec must be a string, got {type(text).__name__}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(_help(f"cannot parse the penalty {text!r}")) from None
    return _build(tree.body, text)


def _help(message: str) -> str:
    return (f"{message}; a penalty is a name ({', '.join(sorted(registered()))}) or an expression of "
            f"{', '.join(sorted(_classes()))} with numbers and +, e.g. 'L1(0.5) + L21(1)' or "
            "'Superpose(Trace(1000), L21Columns(500))'")


def _build(node, text):
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _build(node.left, text) + _build(node.right, text)
    if isinstance(node, ast.Name):
        if node.id in registered():
            return registered()[node.id]()
        if node.id in _classes():
            return _classes()[node.id]()
        raise ValueError(_help(f"unknown penalty {node.id!r} in {text!r}"))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        classes = _classes()
        cls = classes.get(node.func.id) or registered().get(node.func.id)
        if cls is None:
            raise ValueError(_help(f"unknown penalty {node.func.id!r} in {text!r}"))
        args = [_argument(a, text) for a in node.args]
        kwargs = {kw.arg: _argument(kw.value, text) for kw in node.keywords}
        try:
            return cls(*args, **kwargs)
        except TypeError as exc:
            raise ValueError(f"{node.func.id} in {text!r}: {exc}") from None
    raise ValueError(_help(f"cannot read {ast.get_source_segment(text.strip(), node) or text!r} as a penalty"))


def _argument(node, text):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _read_matrix(node.value)
    return _build(node, text)


def _read_matrix(name: str):
    """A matrix argument (Graph's R) from a file: .npy (dense) or .npz (scipy.sparse.save_npz, or an
    npz holding one array)."""
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"penalty argument {name!r}: no such file (a matrix argument is an .npy or .npz file)")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "format" in z.files and "indptr" in z.files:
                import scipy.sparse

                return scipy.sparse.load_npz(path)
            if len(z.files) != 1:
                raise ValueError(f"penalty argument {name!r}: an .npz must hold one array or a scipy.sparse matrix")
            return z[z.files[0]]
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"penalty argument {name!r}: not a readable .npy file ({exc})") from None


# ---------------------------------------------------------------------------------------- plain data
def to_data(penalty: Penalty, arrays: dict, prefix: str = "penalty") -> dict:
    """A JSON-able description of ``penalty``; its matrix arguments go into ``arrays`` (name -> ndarray).

    Sparse matrices are stored densely (penalty matrices are T x E, small against the data).
    """
    if isinstance(penalty, (Sum, Superpose)):
        kind = "Sum" if isinstance(penalty, Sum) else "Superpose"
        return {"class": kind, "parts": [to_data(p, arrays, f"{prefix}_{i}") for i, p in enumerate(penalty.parts)]}
    params = {}
    for key, value in penalty.params().items():
        if isinstance(value, np.ndarray) or hasattr(value, "toarray"):
            name = f"{prefix}_{key}"
            arrays[name] = value.toarray() if hasattr(value, "toarray") else np.asarray(value)
            params[key] = {"array": name}
        else:
            params[key] = value
    return {"class": type(penalty).__name__, "params": params}


def from_data(data: dict, arrays: dict) -> Penalty:
    """The penalty :func:`to_data` described (raises ValueError on anything malformed)."""
    if not isinstance(data, dict) or "class" not in data:
        raise ValueError(f"malformed penalty description {data!r}")
    kind = data["class"]
    if kind in ("Sum", "Superpose"):
        parts = data.get("parts")
        if not isinstance(parts, list) or not parts:
            raise ValueError(f"malformed {kind} description: no parts")
        built = [from_data(p, arrays) for p in parts]
        return Sum(*built) if kind == "Sum" else Superpose(*built)
    classes = _classes()
    if kind not in classes:
        raise ValueError(f"unknown penalty class {kind!r} (known: {sorted(classes)})")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"malformed parameters of {kind}: {params!r}")
    kwargs = {}
    for key, value in params.items():
        if isinstance(value, dict) and set(value) == {"array"}:
            if value["array"] not in arrays:
                raise ValueError(f"{kind}: the array {value['array']!r} is missing")
            value = arrays[value["array"]]
        kwargs[key] = value
    try:
        return classes[kind](**kwargs)
    except TypeError as exc:
        raise ValueError(f"{kind}: {exc}") from None
