"""Actor and critic networks (flax) and the action distributions PPO needs.

Every network input keeps the agent axis second to last, `(..., N, D)`, so one code path
serves shared parameters (a plain batched matmul over all agents) and per-role parameters
(parameters gathered per agent and `vmap`ped over that axis). Recurrent variants take the
time axis first, `(T, ..., N, D)`, plus a reset flag `(T, ..., N)` that zeroes the GRU
state where an episode starts.

The continuous head is a state-independent-std Gaussian over a pre-squash variable `u`;
the environment receives `low + (tanh(u) + 1) / 2 * (high - low)`. PPO ratios only need
`log N(u)`: the tanh Jacobian does not depend on the parameters once `u` is stored.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu}


def _dense(features: int, scale: float, name: str | None = None) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale),
                    bias_init=nn.initializers.zeros, name=name)


class Torso(nn.Module):
    """MLP (orthogonal init, gain sqrt 2), optionally followed by a GRU over time."""
    hidden_sizes: Sequence[int]
    activation: str
    gru_size: int = 0  # 0: feed-forward

    @nn.compact
    def __call__(self, x: jax.Array, h: jax.Array | None = None, resets: jax.Array | None = None):
        act = ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(_dense(width, math.sqrt(2))(x))
        if not self.gru_size:
            return x, h
        cell = nn.GRUCell(self.gru_size, kernel_init=nn.initializers.orthogonal(1.0), name="gru")

        def step(cell, carry, inputs):
            xt, reset = inputs
            carry = jnp.where(reset[..., None], jnp.zeros_like(carry), carry)
            carry, out = cell(carry, xt)
            return carry, out

        scan = nn.scan(step, variable_broadcast="params", split_rngs={"params": False})
        return scan(cell, h, (x, resets))[::-1]


class Actor(nn.Module):
    action_dim: int  # number of categories when discrete
    discrete: bool
    hidden_sizes: Sequence[int]
    activation: str
    gru_size: int = 0
    log_std_init: float = -0.5

    @nn.compact
    def __call__(self, x, h=None, resets=None):
        z, h = Torso(self.hidden_sizes, self.activation, self.gru_size)(x, h, resets)
        out = _dense(self.action_dim, 0.01, name="head")(z)
        if self.discrete:
            return h, out, None
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        return h, out, jnp.broadcast_to(log_std, out.shape)


class Critic(nn.Module):
    hidden_sizes: Sequence[int]
    activation: str
    gru_size: int = 0

    @nn.compact
    def __call__(self, x, h=None, resets=None):
        z, h = Torso(self.hidden_sizes, self.activation, self.gru_size)(x, h, resets)
        return h, _dense(1, 1.0, name="head")(z)[..., 0]


def init_per_role(module: nn.Module, key: jax.Array, num_roles: int, *example) -> Any:
    """Parameters with a leading role axis (one independent set per role)."""
    return jax.vmap(lambda k: module.init(k, *example))(jax.random.split(key, num_roles))


def apply_per_role(module: nn.Module, params: Any, roles: tuple[int, ...], x, h=None, resets=None):
    """Apply `module` with each agent's role parameters; the agent axis of `x` is -2.

    One role: the parameters have a role axis of size 1 and the whole batch is one
    matmul. Several roles: gather per agent and vmap over the agent axis.
    """
    if len(set(roles)) <= 1:
        return module.apply(jax.tree.map(lambda p: p[0], params), x, h, resets)
    per_agent = jax.tree.map(lambda p: p[np.asarray(roles)], params)
    h_axis = None if h is None else h.ndim - 2
    r_axis = None if resets is None else resets.ndim - 1
    fn = jax.vmap(module.apply, in_axes=(0, x.ndim - 2, h_axis, r_axis), out_axes=-1)
    out = fn(per_agent, x, h, resets)
    # vmap put the agent axis last on every output; move it back to -2 where a feature axis follows
    h_new, *rest = out
    h_new = None if h_new is None else jnp.moveaxis(h_new, -1, -2)
    return (h_new, *(r if r is None or r.ndim == x.ndim - 1 else jnp.moveaxis(r, -1, -2) for r in rest))


# -- distributions -----------------------------------------------------------------------

def gaussian_log_prob(mean, log_std, u):
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def gaussian_entropy(log_std):
    return jnp.sum(log_std + 0.5 * (1.0 + math.log(2 * math.pi)), axis=-1)


def categorical_log_prob(logits, a):
    logp = jax.nn.log_softmax(logits)
    return jnp.take_along_axis(logp, a[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits):
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def squash(u, low, high):
    """Pre-squash Gaussian sample → action inside [low, high] (clipped against rounding)."""
    a = low + (jnp.tanh(u) + 1.0) * 0.5 * (high - low)
    return jnp.clip(a, low, high)
