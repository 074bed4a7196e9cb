"""Loops of `ecliptic.internal`: `while_loop` and `scan` with reverse-mode autodiff
in bounded memory, and in-place buffers. See `README.md` in this folder."""

from ._api import scan as scan, while_loop as while_loop
from ._buffer import buffer_at_set as buffer_at_set, MaybeBuffer as MaybeBuffer
from ._primitives import (
    maybe_set_p as maybe_set_p,
    select_if_vmap_p as select_if_vmap_p,
)
