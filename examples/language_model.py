"""A small decoder-only transformer trained on Python source, then sampled with a
key-value cache.

The text is the source of a few standard-library modules (`inspect.getsource`;
nothing is downloaded), and the tokens are its characters. The model: a token
embedding; blocks of RMSNorm -> causal grouped-query attention (4 query heads, 2
key/value heads, rotary embeddings) -> RMSNorm -> MLP, with residual connections; an
RMSNorm and a read-out. Layers act on one sequence: the loss maps the model over the
batch with `jax.vmap`. Trained with optax's adamw; the loss curve goes to a PNG.

**Two models, one set of weights.** For training, the blocks are an `eqx.nn.Stacked`
(one block, traced once, run with `jax.lax.scan`). For decoding, the attention needs
a key-value cache (`kv_cache_size=`), kept in an `eqx.nn.State` through a
`StateIndex`, and `Stacked` refuses layers holding one (its scan does not thread a
`State`). So `build_decoder` makes a second model, `CachedDecoder`: a tuple of the
trained blocks (`list(stack)`), each with its attention swapped for a cached layer
into which the trained projections are copied (a cache adds or changes no
parameters; the script checks that both give the same logits). The tuple is
unrolled when traced, which for a few blocks costs little.

It then generates from a prompt (a) without the cache, recomputing the whole prefix
at each step in a fixed-length buffer (one compiled step serves every position), and
(b) with the cache: a prefill call, then one jitted call per token. Both must give
the same tokens, greedily and at `--temperature` (drawn with the same keys); it
prints the tokens per second of each.

    python examples/language_model.py          # about 2 minutes on a 2-core CPU
    python examples/language_model.py --tiny   # smoke test
    python examples/language_model.py --steps 2000 --out-dir /tmp/lm
"""

# ruff: noqa: F722  (jaxtyping shape strings)

import argparse
import importlib
import inspect
import math
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

import ecliptic as eqx


MODULES = ("collections", "functools", "textwrap", "dataclasses", "string", "enum")
PROMPT = "    def __eq__(self, other):\n        if "
Tokens = Int[Array, " seq"]  # token ids of one sequence
Scalar = Float[Array, ""]
Key = PRNGKeyArray
Index = Int[Array, ""]
Batch = Int[Array, "batch seq"]
State = eqx.nn.State


def load_text() -> str:
    """The source of the `MODULES`, joined: the same text on every run (for a given
    Python version)."""
    sources = [inspect.getsource(importlib.import_module(m)) for m in MODULES]
    return "\n\n".join(sources)


def encode(text: str, chars: str) -> np.ndarray:
    """The index in `chars` of each character of `text`, as int32."""
    index = {c: i for i, c in enumerate(chars)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise SystemExit(f"characters not in the vocabulary: {missing}")
    return np.array([index[c] for c in text], dtype=np.int32)


def to_text(tokens: np.ndarray, chars: str) -> str:
    return "".join(chars[int(t)] for t in tokens)


class Block(eqx.Module):
    """One pre-norm transformer block on one sequence: `x + attn(norm(x))`, then
    `x + mlp(norm(x))`. Rotary embeddings rotate each query and key head."""

    attn_norm: eqx.nn.RMSNorm
    attn: eqx.nn.MultiheadAttention
    mlp_norm: eqx.nn.RMSNorm
    up: eqx.nn.Linear
    down: eqx.nn.Linear
    rope: eqx.nn.RotaryPositionalEmbedding

    def __init__(self, dim: int, heads: int, kv_heads: int, *, key: Key):
        k_attn, k_up, k_down = jr.split(key, 3)
        self.attn_norm = eqx.nn.RMSNorm(dim, use_bias=False)
        self.attn = eqx.nn.MultiheadAttention(
            heads, dim, num_kv_heads=kv_heads, is_causal=True, key=k_attn
        )
        self.mlp_norm = eqx.nn.RMSNorm(dim, use_bias=False)
        self.up = eqx.nn.Linear(dim, 4 * dim, key=k_up)
        self.down = eqx.nn.Linear(4 * dim, dim, key=k_down)
        self.rope = eqx.nn.RotaryPositionalEmbedding(dim // heads)

    def _rotate(self, offset: int | Index) -> Callable:
        """`process_heads` for the attention: RoPE on every query and key head, the
        first row at position `offset`."""
        per_head = jax.vmap(
            lambda h: self.rope(h, offset=offset), in_axes=1, out_axes=1
        )
        return lambda q, k, v: (per_head(q), per_head(k), v)

    def _mlp(self, x: Float[Array, "seq dim"]) -> Float[Array, "seq dim"]:
        h = jax.vmap(self.mlp_norm)(x)
        return x + jax.vmap(lambda r: self.down(jax.nn.gelu(self.up(r))))(h)

    def __call__(
        self, x: Float[Array, "seq dim"], *, key: Key | None = None
    ) -> Float[Array, "seq dim"]:
        """The block without a cache (training): `x` is a whole sequence from
        position 0. `key` is unused (`Stacked` passes one)."""
        h = jax.vmap(self.attn_norm)(x)
        x = x + self.attn(h, h, h, process_heads=self._rotate(0))
        return self._mlp(x)

    def decode(
        self, x: Float[Array, "new dim"], state: State
    ) -> tuple[Float[Array, "new dim"], State]:
        """The block with a cached attention layer: `x` are the new tokens, placed
        at the cache's position; returns their outputs and the updated state."""
        offset = self.attn.cache_position(state)
        h = jax.vmap(self.attn_norm)(x)
        out, state = self.attn(h, h, h, state=state, process_heads=self._rotate(offset))
        return self._mlp(x + out), state


class LanguageModel(eqx.Module):
    """Embedding, `depth` blocks in an `eqx.nn.Stacked`, RMSNorm, read-out."""

    embed: eqx.nn.Embedding
    blocks: eqx.nn.Stacked
    norm: eqx.nn.RMSNorm
    head: eqx.nn.Linear

    def __init__(
        self, vocab: int, dim: int, depth: int, heads: int, kv_heads: int, *, key: Key
    ):
        k_embed, k_blocks, k_head = jr.split(key, 3)
        init = jax.nn.initializers.normal(stddev=0.02)
        self.embed = eqx.nn.Embedding(vocab, dim, weight_init=init, key=k_embed)
        make_block = lambda k: Block(dim, heads, kv_heads, key=k)
        self.blocks = eqx.nn.Stacked(make_block, depth, key=k_blocks)
        self.norm = eqx.nn.RMSNorm(dim, use_bias=False)
        self.head = eqx.nn.Linear(dim, vocab, key=k_head)

    def __call__(self, tokens: Tokens) -> Float[Array, "seq vocab"]:
        """**Arguments:** `tokens`: one sequence of token ids, shape `(seq,)`.

        **Returns:** the logits of the next token at every position.
        """
        x = self.blocks(jax.vmap(self.embed)(tokens))
        return jax.vmap(lambda r: self.head(self.norm(r)))(x)


class CachedDecoder(eqx.Module):
    """The trained model with a key-value cache in each block's attention; the
    blocks are a tuple, run one after the other with the `State` threaded."""

    embed: eqx.nn.Embedding
    blocks: tuple[Block, ...]
    norm: eqx.nn.RMSNorm
    head: eqx.nn.Linear

    def __call__(
        self, tokens: Int[Array, " new"], state: State
    ) -> tuple[Float[Array, "new vocab"], State]:
        """Feeds the new `tokens` (the prompt, or one token) after those cached."""
        x = jax.vmap(self.embed)(tokens)
        for block in self.blocks:
            x, state = block.decode(x, state)
        return jax.vmap(lambda r: self.head(self.norm(r)))(x), state

    def reset(self, state: State) -> State:
        """Empties every block's cache, for a new sequence."""
        for block in self.blocks:
            state = block.attn.reset_cache(state)
        return state


def cached_attention(
    attn: eqx.nn.MultiheadAttention, size: int
) -> eqx.nn.MultiheadAttention:
    """`attn` with a key-value cache of `size` positions: a new cached layer, with
    the four projections of `attn` copied in."""
    cached = eqx.nn.MultiheadAttention(
        attn.num_heads,
        attn.query_size,
        num_kv_heads=attn.num_kv_heads,
        is_causal=True,
        kv_cache_size=size,
        key=jr.PRNGKey(0),  # weights replaced below
    )
    projections = lambda a: (a.query_proj, a.key_proj, a.value_proj, a.output_proj)
    shapes = lambda a: jax.tree.map(jnp.shape, projections(a))
    assert shapes(cached) == shapes(attn), "the cache changed the parameters"
    return eqx.tree_at(projections, cached, projections(attn))


def build_decoder(model: LanguageModel, size: int) -> CachedDecoder:
    """The `CachedDecoder` holding `model`'s weights. Call it through
    `eqx.nn.make_with_state`, which also returns the (empty) caches' `State`."""
    blocks = tuple(
        eqx.tree_at(lambda b: b.attn, block, cached_attention(block.attn, size))
        for block in model.blocks
    )
    return CachedDecoder(model.embed, blocks, model.norm, model.head)


def get_batch(data: Tokens, key: Key, batch: int, seq: int) -> tuple[Batch, Batch]:
    """`batch` random windows of `seq` tokens, and the same windows shifted by one
    (the targets)."""
    starts = jr.randint(key, (batch,), 0, data.shape[0] - seq - 1)
    window = lambda s: jax.lax.dynamic_slice_in_dim(data, s, seq + 1)
    chunks = jax.vmap(window)(starts)
    return chunks[:, :-1], chunks[:, 1:]


def loss_fn(model: LanguageModel, x: Batch, y: Batch) -> Scalar:
    """Mean next-token cross-entropy; the model is mapped over the batch."""
    logits = jax.vmap(model)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


eval_loss = eqx.filter_jit(loss_fn)


def train(
    model: LanguageModel, data: Tokens, args: argparse.Namespace
) -> tuple[LanguageModel, list[float]]:
    """Trains with adamw (warm-up then cosine decay, gradients clipped to norm 1);
    returns the model and the loss of every step."""
    from tqdm import tqdm

    schedule = optax.warmup_cosine_decay_schedule(
        0.0, args.lr, min(100, args.steps // 10 + 1), args.steps
    )
    optim = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01)
    )
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state, key):
        x, y = get_batch(data, key, args.batch_size, args.context)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    losses = []
    bar = tqdm(jr.split(jr.PRNGKey(args.seed + 1), args.steps), desc="train")
    for i, key in enumerate(bar):
        model, opt_state, loss = step(model, opt_state, key)
        losses.append(loss)
        if i % 20 == 0 or i == args.steps - 1:
            bar.set_postfix(loss=f"{float(loss):.3f}")
    return model, [float(x) for x in losses]


def choose(logits: Float[Array, " vocab"], key: Key, temperature: Scalar) -> Index:
    """The next token: the most likely one at temperature 0, else a sample. (The
    temperature is an array, so that one compiled step serves every value.)"""
    scaled = logits / jnp.maximum(temperature, 1e-6)
    token = jnp.where(temperature > 0, jr.categorical(key, scaled), jnp.argmax(logits))
    return token.astype(jnp.int32)


@eqx.filter_jit
def uncached_step(
    model: LanguageModel, buffer: Tokens, t: Index, key: Key, temperature: Scalar
) -> tuple[Tokens, Index]:
    """Runs the model on the whole buffer (positions from `t` on are not seen, the
    attention being causal) and writes the next token at position `t`."""
    token = choose(model(buffer)[t - 1], jr.fold_in(key, t), temperature)
    return buffer.at[t].set(token), t + 1


@eqx.filter_jit
def cached_step(
    decoder: CachedDecoder, tokens: Tokens, state: State, key: Key, temperature: Scalar
) -> tuple[Int[Array, " 1"], State]:
    """Feeds `tokens` to the cached decoder; returns the next token, shape `(1,)`
    (ready to be fed back), and the state. Compiled twice: for the prompt's length
    and for one token."""
    logits, state = decoder(tokens, state)
    position = decoder.blocks[0].attn.cache_position(state)
    return choose(logits[-1], jr.fold_in(key, position), temperature)[None], state


def generate_uncached(
    model: LanguageModel, prompt: Tokens, n: int, key: Key, temp: Scalar
) -> tuple[np.ndarray, float]:
    """Generates `n` tokens after `prompt`, recomputing the prefix each step;
    returns them and the seconds taken (after a compiling call)."""
    buffer = jnp.zeros(len(prompt) + n, jnp.int32).at[: len(prompt)].set(prompt)
    t = jnp.asarray(len(prompt), jnp.int32)
    jax.block_until_ready(uncached_step(model, buffer, t, key, temp))
    start = time.perf_counter()
    for _ in range(n):
        buffer, t = uncached_step(model, buffer, t, key, temp)
    buffer = np.asarray(buffer)
    return buffer[len(prompt) :], time.perf_counter() - start


def generate_cached(
    decoder: CachedDecoder, state: State, prompt: Tokens, n: int, key: Key, temp: Scalar
) -> tuple[np.ndarray, float, State]:
    """Generates `n` tokens after `prompt` with the cache, emptied first: a
    prefill call, then one call per token. Returns the tokens, the seconds taken
    (after compiling) and the final state."""
    state = decoder.reset(state)
    for warm_up in (prompt, prompt[:1]):  # compiles both calls
        jax.block_until_ready(cached_step(decoder, warm_up, state, key, temp))
    start = time.perf_counter()
    token, state = cached_step(decoder, prompt, state, key, temp)
    tokens = [token]
    for _ in range(n - 1):
        token, state = cached_step(decoder, token, state, key, temp)
        tokens.append(token)
    jax.block_until_ready(tokens)
    seconds = time.perf_counter() - start
    return np.concatenate([np.asarray(t) for t in tokens]), seconds, state


@eqx.filter_jit
def check_decoder(
    model: LanguageModel, decoder: CachedDecoder, state: State, tokens: Tokens
) -> Scalar:
    """Feeds `tokens` to the cached decoder one at a time (a `jax.lax.scan`, from
    an emptied cache) and returns the largest difference between its logits and
    the trained model's on the whole sequence: ~0 if the weights were copied and
    the cache works. (Under `jit`, so that `state` stays valid.)"""

    def step(state: State, token: Index) -> tuple[State, Float[Array, " vocab"]]:
        logits, state = decoder(token[None], state)
        return state, logits[0]

    _, logits = jax.lax.scan(step, decoder.reset(state), tokens)
    return jnp.max(jnp.abs(logits - model(tokens)))


def plot_losses(
    losses: list[float], before: float, after: float, path: pathlib.Path
) -> None:
    """Writes the training loss per step to a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8, label="training batch")
    ax.plot([1, len(losses)], [before, after], "o", label="held-out, before and after")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/char)", yscale="log")
    ax.set_title("Character-level language model on Python source")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"loss curve: {path}")


def sample(
    model: LanguageModel, chars: str, args: argparse.Namespace, key: Key
) -> bool:
    """Generates greedily, then at `args.temperature`, each time without and with
    the cache (sampling draws with the same keys, `fold_in(key, position)`, in
    both), then checks the cache token by token. Returns whether all agree."""
    prompt = jnp.asarray(encode(PROMPT, chars))
    n = args.tokens
    decoder, state = eqx.nn.make_with_state(build_decoder)(model, len(prompt) + n)
    agree = True
    for temperature in (0.0, args.temperature):
        temp = jnp.asarray(temperature)
        slow, slow_s = generate_uncached(model, prompt, n, key, temp)
        fast, fast_s, state = generate_cached(decoder, state, prompt, n, key, temp)
        kind = "greedy" if temperature == 0 else f"temperature {temperature}"
        print(
            f"{kind}, {n} tokens: uncached {n / slow_s:.0f} tokens/s "
            f"({slow_s:.2f} s), cached {n / fast_s:.0f} tokens/s ({fast_s:.2f} s)"
        )
        same = bool(np.array_equal(slow, fast))
        agree = agree and same
        print(f"cached and uncached {kind} samples agree: {same}")
        print(f"{PROMPT}{to_text(fast, chars)}\n")
    text = jnp.concatenate([prompt, jnp.asarray(fast)])  # teacher-forced check
    diff = float(check_decoder(model, decoder, state, text))
    print(f"cached decoder fed token by token, logits vs the model's: {diff:.1e} max")
    return agree and diff < 1e-3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--steps", type=int, default=500, help="training steps (default: 500)")
    add("--batch-size", type=int, default=16, help="default: 16")
    add("--context", type=int, default=128, help="training window (default: 128)")
    add("--dim", type=int, default=96, help="model width (default: 96)")
    add("--depth", type=int, default=3, help="number of blocks (default: 3)")
    add("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    add("--tokens", type=int, default=88, help="tokens to generate (default: 88)")
    add("--temperature", type=float, default=0.8, help="last sample (default: 0.8)")
    add("--seed", type=int, default=0, help="default: 0")
    add("--out-dir", type=pathlib.Path, default="demo_output", help="for the PNG")
    add("--tiny", action="store_true", help="smoke test: a tiny model, 10 steps")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.context = 10, 4, 64
        args.dim, args.depth, args.tokens = 32, 2, 24
    if len(PROMPT) + args.tokens > args.context:
        parser.error(f"the prompt and --tokens exceed --context={args.context}")
    return args


def main(argv=None) -> bool:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    text = load_text()
    chars = "".join(sorted(set(text)))
    data = encode(text, chars)
    split = int(0.9 * len(data))
    names = ", ".join(MODULES)
    print(f"text: {len(text):,} characters ({len(chars)} distinct) of {names}")
    k_model, k_val, k_sample = jr.split(jr.PRNGKey(args.seed), 3)
    model = LanguageModel(len(chars), args.dim, args.depth, 4, 2, key=k_model)
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    print(f"model: {n_params:,} parameters, {args.depth} blocks in an eqx.nn.Stacked")
    val = get_batch(jnp.asarray(data[split:]), k_val, 32, args.context)
    before = float(eval_loss(model, *val))
    start = time.perf_counter()
    model, losses = train(model, jnp.asarray(data[:split]), args)
    after = float(eval_loss(model, *val))
    print(
        f"held-out loss before training: {before:.3f}, after: {after:.3f} "
        f"(uniform: {math.log(len(chars)):.3f}; {args.steps} steps, "
        f"{time.perf_counter() - start:.1f} s)"
    )
    agree = sample(model, chars, args, k_sample)
    plot_losses(losses, before, after, args.out_dir / "language_model_loss.png")
    if not agree:
        raise SystemExit("the cached decoder and the trained model disagree")
    return agree


if __name__ == "__main__":
    main()
