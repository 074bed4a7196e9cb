"""ecliptic.nn: layers. Every layer acts on a single example; batch with `jax.vmap`."""

# Re-exports only, one block per private module.

# -- core layers: _linear, _mlp, _conv, _pool, _embedding, _dropout, _sequential,
#    _activations, _inference --

# -- stateful, normalisation, attention, rnn, shared: _stateful, _normalisation,
#    _batch_norm, _spectral_norm, _weight_norm, _attention, _rnn, _shared --
from ._attention import MultiheadAttention as MultiheadAttention
from ._batch_norm import BatchNorm as BatchNorm
from ._inference import inference_mode as inference_mode
from ._normalisation import (
    GroupNorm as GroupNorm,
    LayerNorm as LayerNorm,
    RMSNorm as RMSNorm,
)
from ._rnn import GRUCell as GRUCell, LSTMCell as LSTMCell
from ._sequential import Lambda as Lambda, Sequential as Sequential
from ._shared import Shared as Shared
from ._spectral_norm import SpectralNorm as SpectralNorm
from ._stateful import (
    delete_init_state as delete_init_state,
    make_with_state as make_with_state,
    State as State,
    StatefulLayer as StatefulLayer,
    StateIndex as StateIndex,
)
from ._weight_norm import WeightNorm as WeightNorm
