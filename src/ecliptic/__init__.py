"""ecliptic: neural networks and scientific computing in JAX. A model is a PyTree."""

# Re-exports only. Each block belongs to one private module; keep one blank line
# between blocks.

from . import debug as debug, nn as nn

# -- _module/, _pretty_print.py, _enum.py, _caches.py (Module system) --
from ._enum import Enumeration as Enumeration

# -- _filters.py, _tree.py, _update.py (filters and tree tools) --
from ._filters import (
    combine as combine,
    filter as filter,
    is_array as is_array,
    is_array_like as is_array_like,
    is_inexact_array as is_inexact_array,
    is_inexact_array_like as is_inexact_array_like,
    partition as partition,
)
from ._module import (
    AbstractClassVar as AbstractClassVar,
    AbstractVar as AbstractVar,
    field as field,
    Module as Module,
    module_update_wrapper as module_update_wrapper,
    Partial as Partial,
    static_field as static_field,
    StrictConfig as StrictConfig,
)
from ._pretty_print import tree_pformat as tree_pformat, tree_pprint as tree_pprint
from ._tree import (
    tree_at as tree_at,
    tree_check as tree_check,
    tree_equal as tree_equal,
    tree_flatten_one_level as tree_flatten_one_level,
)
from ._update import apply_updates as apply_updates


# -- _jit.py, _errors.py (filter_jit and runtime errors) --

# -- _ad.py, _vmap_pmap.py, _eval_shape.py, _make_jaxpr.py, _callback.py, _sharding.py --

# -- _serialisation.py --

# -- nn re-exports at top level --


__version__ = "0.1.0"
