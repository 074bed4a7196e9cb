"""safetensors files: save a model's state dict atomically, and load a model from a
file lazily (only the tensors the model needs are read), through the `safetensors`
package's NumPy API (no torch needed).

Test hook: `_open` is the function that opens a file for reading
(`safetensors.safe_open`); the tests replace it to count the tensors read.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy

from .._messages import interop_metadata_error
from ..nn import State
from ._state_dict import load_from_source, Rename, Source, state_dict


_open = safetensors.safe_open

# The dtype names of the safetensors header, as NumPy dtypes.
_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "U32": np.uint32,
    "I32": np.int32,
    "U64": np.uint64,
    "I64": np.int64,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F32": np.float32,
    "F64": np.float64,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
}


def _version() -> str:
    try:
        return importlib.metadata.version("ecliptic")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def save_safetensors(
    path: str | os.PathLike,
    model: Any,
    state: State | None = None,
    *,
    metadata: Mapping[str, str] | None = None,
    rename: Rename = None,
) -> None:
    """Saves the model's [`ecliptic.state_dict`][] (PyTorch's names and layouts) as
    a safetensors file, which `safetensors.torch.load_file` and
    [`ecliptic.load_safetensors`][] read.

    The file is written to a temporary file in the same directory and moved into
    place with `os.replace`, so a failure leaves no partial file (and an existing
    file at `path` untouched). Dtypes are kept, `bfloat16` included.

    **Arguments:**

    - `path`: where to write the file.
    - `model`: the model.
    - `state`: the model's [`ecliptic.nn.State`][]; required when it has a
        `BatchNorm`.
    - `metadata`: extra header entries, `str` to `str`. The header always has
        `"format": "pt"` (as torch's `save_file` writes) and `"ecliptic_version"`.
        (Keyword only.)
    - `rename`: renaming of the outgoing names, as for [`ecliptic.state_dict`][].
        (Keyword only.)

    **Returns:** `None`.
    """
    extra = dict(metadata) if metadata is not None else {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise interop_metadata_error(metadata)
    header = {"format": "pt", "ecliptic_version": _version(), **extra}
    tensors = {
        k: np.asarray(v, order="C")
        for k, v in state_dict(model, state, rename=rename).items()
    }
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a saved model is not
        safetensors.numpy.save_file(tensors, tmp, metadata=header)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def load_safetensors(
    path: str | os.PathLike,
    model: Any,
    *,
    state: State | None = None,
    rename: Rename = None,
    strict: bool = True,
) -> Any:
    """Returns `model` with the tensors of a safetensors file (PyTorch's names and
    layouts, as [`ecliptic.load_state_dict`][]).

    The file is opened lazily: names, shapes and dtypes come from its header, and
    only the tensors the model takes are read, so a model can take a few tensors
    from a large file. In strict mode nothing is read unless everything matches.

    **Arguments:**

    - `path`: the safetensors file.
    - `model`: the model whose structure, shapes and dtypes the tensors must fit.
    - `state`: the model's [`ecliptic.nn.State`][]; required when the model has a
        `BatchNorm`. (Keyword only.)
    - `rename`: how the file's names map to the model's: `(pattern, replacement)`
        regex pairs applied in order, or a function `name -> name | None`.
        (Keyword only.)
    - `strict`: if `True` (default), every name must match with the same shape
        and dtype; otherwise load what matches. (Keyword only.)

    **Returns:** the new model; `(model, state)` when `state` is given; with
    `strict=False`, a [`ecliptic.LoadReport`][] as the last element.

    **Raises:** [`ecliptic.StateDictError`][] (strict mode) listing every missing,
    unexpected and mismatched tensor at once; `TypeError` for a layer without a
    PyTorch layout.
    """
    path = os.fspath(path)
    with _open(path, framework="numpy") as f:

        def spec(name: str) -> tuple[tuple[int, ...], Any]:
            piece = f.get_slice(name)
            dtype = piece.get_dtype()
            return tuple(piece.get_shape()), _DTYPES.get(dtype, dtype)

        source = Source(
            f.keys(), spec, f.get_tensor, f"ecliptic.load_safetensors({path!r})"
        )
        return load_from_source(
            model,
            source,
            state=state,
            rename=rename,
            strict=strict,
            function="ecliptic.load_safetensors",
        )
