"""Declared sharding (see `README.md`): `filter_shard`, `ShardingRules` and the
plan built from them, the presets that need no layer types, `filter_shard_map`."""

from ._plan import (
    describe_sharding as describe_sharding,
    shard_model as shard_model,
    sharding_plan as sharding_plan,
)
from ._presets import (
    check_axis_name as check_axis_name,
    check_min_size as check_min_size,
    data_parallel as data_parallel,
    fsdp as fsdp,
    fsdp_spec as fsdp_spec,
    FsdpSpec as FsdpSpec,
)
from ._rules import glob_to_regex as glob_to_regex, ShardingRules as ShardingRules
from ._shard import filter_shard as filter_shard
from ._shard_map import filter_shard_map as filter_shard_map
