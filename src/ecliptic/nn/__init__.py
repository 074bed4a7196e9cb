"""ecliptic.nn: layers. Every layer acts on a single example; batch with `jax.vmap`."""

# Re-exports only, one block per private module.

# -- core layers: _linear, _mlp, _conv, _pool, _embedding, _dropout, _sequential,
#    _activations, _inference --

# -- stateful, normalisation, attention, rnn, shared: _stateful, _normalisation,
#    _batch_norm, _spectral_norm, _weight_norm, _attention, _rnn, _shared --
