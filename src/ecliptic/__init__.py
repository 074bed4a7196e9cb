"""ecliptic: neural networks and scientific computing in JAX. A model is a PyTree."""

# Re-exports only: `from ._x import name as name`.

from . import debug as debug, nn as nn
from ._ad import (
    filter_checkpoint as filter_checkpoint,
    filter_grad as filter_grad,
    filter_hessian as filter_hessian,
    filter_jacfwd as filter_jacfwd,
    filter_jacrev as filter_jacrev,
    filter_jvp as filter_jvp,
    filter_value_and_grad as filter_value_and_grad,
    filter_vjp as filter_vjp,
)
from ._caches import clear_caches as clear_caches
from ._callback import filter_pure_callback as filter_pure_callback
from ._checks import (
    CheckpointError as CheckpointError,
    EquinoxRuntimeError as EquinoxRuntimeError,
    EquinoxTracetimeError as EquinoxTracetimeError,
    ShapeError as ShapeError,
    StateDictError as StateDictError,
)
from ._custom import (
    filter_closure_convert as filter_closure_convert,
    filter_custom_jvp as filter_custom_jvp,
    filter_custom_vjp as filter_custom_vjp,
)
from ._dispatch import filter_jit as filter_jit
from ._enum import Enumeration as Enumeration
from ._errors import branched_error_if as branched_error_if, error_if as error_if
from ._eval_shape import filter_eval_shape as filter_eval_shape
from ._filters import (
    combine as combine,
    filter as filter,
    is_array as is_array,
    is_array_like as is_array_like,
    is_inexact_array as is_inexact_array,
    is_inexact_array_like as is_inexact_array_like,
    partition as partition,
)
from ._interop import (
    load_safetensors as load_safetensors,
    load_state_dict as load_state_dict,
    LoadReport as LoadReport,
    save_safetensors as save_safetensors,
    state_dict as state_dict,
)
from ._leading import vmap_leading as vmap_leading
from ._make_jaxpr import filter_make_jaxpr as filter_make_jaxpr
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
from ._precision import (
    all_finite as all_finite,
    DynamicLossScale as DynamicLossScale,
    MixedPrecision as MixedPrecision,
    NoLossScale as NoLossScale,
    Policy as Policy,
)
from ._pretty_print import tree_pformat as tree_pformat, tree_pprint as tree_pprint
from ._serialisation import (
    default_deserialise_filter_spec as default_deserialise_filter_spec,
    default_serialise_filter_spec as default_serialise_filter_spec,
    load_with_hyperparameters as load_with_hyperparameters,
    save_with_hyperparameters as save_with_hyperparameters,
    tree_deserialise_leaves as tree_deserialise_leaves,
    tree_serialise_leaves as tree_serialise_leaves,
)
from ._sharding import (
    data_parallel as data_parallel,
    describe_sharding as describe_sharding,
    filter_shard as filter_shard,
    filter_shard_map as filter_shard_map,
    fsdp as fsdp,
    shard_model as shard_model,
    sharding_plan as sharding_plan,
    ShardingRules as ShardingRules,
)
from ._summary import (
    SummaryRow as SummaryRow,
    tree_summary as tree_summary,
    TreeSummary as TreeSummary,
)
from ._tensor_parallel import (
    fsdp_tensor_parallel as fsdp_tensor_parallel,
    tensor_parallel as tensor_parallel,
)
from ._tree import (
    tree_at as tree_at,
    tree_check as tree_check,
    tree_equal as tree_equal,
    tree_flatten_one_level as tree_flatten_one_level,
)
from ._update import apply_updates as apply_updates
from ._vmap_pmap import (
    filter_pmap as filter_pmap,
    filter_vmap as filter_vmap,
    if_array as if_array,
)
from .nn import inference_mode as tree_inference  # noqa: F401 (Equinox alias)


__version__ = "0.1.0"
