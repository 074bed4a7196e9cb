"""State dicts and safetensors files in PyTorch's names and layouts (see
`README.md`). Re-exports only."""

from ._safetensors import (
    load_safetensors as load_safetensors,
    save_safetensors as save_safetensors,
)
from ._state_dict import (
    load_state_dict as load_state_dict,
    LoadReport as LoadReport,
    state_dict as state_dict,
)
