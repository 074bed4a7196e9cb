"""Message builders for user-facing errors other than shapes and dtypes, written once.

On the floor just above `_checks.py`: it imports only the standard library, JAX,
NumPy and `_checks` (for the exception classes), so every floor above can use it
(the Module system, `tree_at`, the transformations' kit and `ecliptic.internal`
included). Each builder composes a message that reads *subject -> expected -> got ->
fix* and either returns the text or the exception for the caller to raise (so
tracebacks point at the caller). One file per family:

- `_checkpoints.py`: describing values; checkpoint records and headers.
- `_trees.py`: filter specs, `tree_at`, `ecliptic.nn.State`.
- `_modules.py`: Module construction and fields; static arguments of transforms;
  strict dtype promotion; `Enumeration`.
- `_runtime.py`: `error_if` and its check sites, `backward_nan`, mapped axes.
- `_internal.py`, `_loops.py`: `ecliptic.internal` (primitives, `nontraceable`,
  `noinline`, `ω`, progress meters; the loops and their buffers).
"""

from ._checkpoints import (
    describe_array as describe_array,
    describe_node as describe_node,
    describe_tree as describe_tree,
    malformed_header_error as malformed_header_error,
    record_mismatch_error as record_mismatch_error,
    trailing_data_error as trailing_data_error,
    truncated_header_error as truncated_header_error,
)
from ._internal import (
    default_name as default_name,
    missing_dependencies_error as missing_dependencies_error,
    noinline_abstract_error as noinline_abstract_error,
    nonbatchable_jvp_error as nonbatchable_jvp_error,
    nonbatchable_message as nonbatchable_message,
    nondifferentiable_backward_message as nondifferentiable_backward_message,
    nondifferentiable_message as nondifferentiable_message,
    nontraceable_error as nontraceable_error,
    omega_is_leaf_error as omega_is_leaf_error,
    omega_other_error as omega_other_error,
    omega_structure_error as omega_structure_error,
    primitive_output_error as primitive_output_error,
    tqdm_missing_error as tqdm_missing_error,
    vprim_zero_error as vprim_zero_error,
)
from ._loops import (
    base_value_error as base_value_error,
    body_structure_error as body_structure_error,
    bounded_needs_max_steps_error as bounded_needs_max_steps_error,
    buffer_dtype_error as buffer_dtype_error,
    buffer_pred_error as buffer_pred_error,
    checkpoints_needed_error as checkpoints_needed_error,
    checkpoints_value_error as checkpoints_value_error,
    cond_output_error as cond_output_error,
    max_steps_type_error as max_steps_type_error,
    negative_max_steps_error as negative_max_steps_error,
    scan_lengths_error as scan_lengths_error,
    unknown_kind_error as unknown_kind_error,
)
from ._modules import (
    abstract_message as abstract_message,
    enumeration_item_redefined as enumeration_item_redefined,
    frozen_error as frozen_error,
    method_in_init_error as method_in_init_error,
    static_array_message as static_array_message,
    strict_promotion_error as strict_promotion_error,
    unhashable_static_error as unhashable_static_error,
)
from ._runtime import (
    backward_nan_nan_message as backward_nan_nan_message,
    backward_nan_report as backward_nan_report,
    check_site as check_site,
    error_if_no_array_error as error_if_no_array_error,
    failed_check_stack_message as failed_check_stack_message,
    mapped_axis_error as mapped_axis_error,
)
from ._trees import (
    filter_spec_error as filter_spec_error,
    missing_state_index_message as missing_state_index_message,
    nested_selection_error as nested_selection_error,
    self_reference_error as self_reference_error,
)
