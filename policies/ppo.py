"""IPPO and MAPPO in the PureJaxRL style: one jitted function runs whole PPO updates.

`Trainer.update` is one PPO update for one seed — rollout (`lax.scan` over steps of
`vmap`ped environments), GAE, then `lax.scan` over epochs and minibatches. `Trainer.chunk`
scans `updates_per_call` updates and `vmap`s over seeds; the host calls it repeatedly,
which is where the progress bar, metrics rows and checkpoints happen.

Data parallel (`devices`): on several local devices the environment axis of the training state
and each minibatch's sample axis are sharded over a one-axis mesh ("data"), parameters and
optimiser state replicated; XLA (GSPMD) inserts the reductions. The program is the same as on one
device, so the learning curve is too, up to the order of floating-point sums.

IPPO: each agent's critic sees its own (normalised) observation. MAPPO: the critic sees
the environment's `world_state` plus a one-hot agent id. Parameters are shared by all
agents unless `roles` gives agents different parameter sets.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from marlstack.policies import networks as nets
from marlstack.policies.config import ConfigError, TrainConfig
from marlstack.policies.envs import EVENT_KEYS, ArrayEnv, EpisodeLog, barrier_summary, make_env
from marlstack.policies.normalize import RunningStats, normalize

_COMPILED_INIT: dict[str, Any] = {}  # config's compile key -> compiled Trainer.init

ENV_AXIS_FIELDS = ("env_log", "obs", "world_state", "done", "actor_h", "critic_h")  # Runner fields with an env axis


@flax.struct.dataclass
class Runner:
    """Everything one seed's training needs to continue exactly where it stopped."""
    params: dict
    opt_state: Any
    env_log: EpisodeLog  # batched over environments
    obs: jax.Array  # (E, N, D) raw
    world_state: jax.Array  # (E, N, W) raw
    done: jax.Array  # (E,) the last step ended an episode (GRU reset at the next step)
    actor_h: jax.Array  # (E, N, H)
    critic_h: jax.Array
    obs_stats: RunningStats
    ws_stats: RunningStats
    key: jax.Array
    update: jax.Array
    total_updates: jax.Array  # for learning-rate annealing; a value, so --resume can extend a run


class Transition(NamedTuple):
    actor_in: jax.Array
    critic_in: jax.Array | None  # None for IPPO: the critic reads actor_in
    reset: jax.Array  # (E, N)
    u: jax.Array  # pre-squash sample or category
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array  # (E,)
    truncated: jax.Array  # (E,) the episode ended by its time limit (a subset of done)
    info: dict


class Batch(NamedTuple):
    """What the PPO loss reads of each sample (time-major in `update`, minibatch-major in the loss)."""
    actor_in: jax.Array
    critic_in: jax.Array | None  # None for IPPO
    reset: jax.Array | None  # GRU resets, recurrent only
    u: jax.Array
    log_prob: jax.Array
    value: jax.Array
    adv: jax.Array
    targets: jax.Array


def role_assignment(cfg: TrainConfig, num_agents: int) -> tuple[int, ...]:
    if not cfg.roles:
        return (0,) * num_agents
    if len(cfg.roles) != num_agents:
        raise ConfigError(f"config key 'roles' needs one role per agent ({num_agents}), got {list(cfg.roles)}")
    return tuple(int(r) for r in cfg.roles)


def build_actor(cfg: TrainConfig, action_dim: int, discrete: bool) -> nets.Actor:
    return nets.Actor(action_dim, discrete, tuple(cfg.hidden_sizes), cfg.activation,
                      cfg.gru_size if cfg.recurrent else 0, cfg.log_std_init)


def actor_input(cfg: TrainConfig, obs_n: jax.Array, agent_index: Any, num_agents: int) -> jax.Array:
    """Normalised observation, plus the one-hot agent id when the config asks for it."""
    if not cfg.agent_id:
        return obs_n
    one_hot = jax.nn.one_hot(agent_index, num_agents, dtype=obs_n.dtype)
    return jnp.concatenate([obs_n, jnp.broadcast_to(one_hot, (*obs_n.shape[:-1], num_agents))], -1)


class Trainer:
    def __init__(self, cfg: TrainConfig, env: Any | None = None):
        self.cfg = cfg
        self.env = ArrayEnv(env if env is not None else make_env(cfg))
        self.spec = spec = self.env.spec
        self.n = spec.num_agents
        self.roles = role_assignment(cfg, self.n)
        self.num_roles = max(self.roles) + 1
        self.mappo = cfg.algo == "mappo"
        gru = cfg.gru_size if cfg.recurrent else 0
        self.hidden = max(gru, 1)
        self.actor = build_actor(cfg, spec.action_dim, spec.discrete)
        self.critic = nets.Critic(tuple(cfg.hidden_sizes), cfg.activation, gru)
        self.low = np.asarray(spec.low, np.float32)
        self.high = np.asarray(spec.high, np.float32)
        self.tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm),
                              optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr, eps=1e-5))
        self.mesh = data_mesh(cfg)

    # -- inputs ------------------------------------------------------------------------
    def _inputs(self, obs, ws, obs_stats, ws_stats):
        cfg, agent = self.cfg, jnp.arange(self.n)
        obs_n = normalize(obs, obs_stats.mean, obs_stats.var) if cfg.normalize_obs else obs
        a_in = actor_input(cfg, obs_n, agent, self.n)
        if not self.mappo:
            return a_in, a_in
        ws_n = normalize(ws, ws_stats.mean, ws_stats.var) if cfg.normalize_obs else ws
        one_hot = jnp.broadcast_to(jax.nn.one_hot(agent, self.n), (*ws.shape[:-1], self.n))
        return a_in, jnp.concatenate([ws_n, one_hot], -1)

    def _heads(self, params, a_in, c_in, actor_h, critic_h, reset, sequence: bool):
        """Actor outputs and values for one step (`sequence=False`) or a time-major sequence."""
        if not self.cfg.recurrent:
            actor_h = critic_h = reset = None
        elif not sequence:
            a_in, c_in, reset = a_in[None], c_in[None], reset[None]
        h_a, out, log_std = nets.apply_per_role(self.actor, params["actor"], self.roles, a_in, actor_h, reset)
        h_c, value = nets.apply_per_role(self.critic, params["critic"], self.roles, c_in, critic_h, reset)
        if self.cfg.recurrent and not sequence:
            out, value, log_std = out[0], value[0], None if log_std is None else log_std[0]
        return h_a, h_c, out, log_std, value

    # -- init ---------------------------------------------------------------------------
    def init(self, key: jax.Array) -> Runner:
        cfg, spec = self.cfg, self.spec
        k_env, k_actor, k_critic, key = jax.random.split(key, 4)
        obs, ws, log = jax.vmap(self.env.reset)(jax.random.split(k_env, cfg.num_envs))
        obs_stats, ws_stats = RunningStats.create(spec.obs_dim), RunningStats.create(spec.world_state_dim)
        a_in, c_in = self._inputs(obs, ws, obs_stats, ws_stats)
        zeros_h = jnp.zeros((cfg.num_envs, self.n, self.hidden))
        if cfg.recurrent:
            reset = jnp.zeros((1, cfg.num_envs, self.n), bool)
            ex_a, ex_c = (a_in[None], zeros_h, reset), (c_in[None], zeros_h, reset)
        else:
            ex_a, ex_c = (a_in,), (c_in,)
        params = {"actor": nets.init_per_role(self.actor, k_actor, self.num_roles, *ex_a),
                  "critic": nets.init_per_role(self.critic, k_critic, self.num_roles, *ex_c)}
        return Runner(params, self.tx.init(params), log, obs, ws, jnp.zeros(cfg.num_envs, bool), zeros_h, zeros_h,
                      obs_stats, ws_stats, key, jnp.zeros((), jnp.int32), jnp.asarray(cfg.num_updates, jnp.int32))

    def init_seeds(self) -> Runner:
        """One runner per seed, stacked. Each seed is initialised by one call of the compiled `init`
        (the vmapped form deadlocks XLA's CPU runtime for some keys with the GRU variant, jaxlib 0.10.2),
        compiled once per process and config: a sweep's worker or a resumed run does not compile it again."""
        key = self.cfg.compile_key()
        if key not in _COMPILED_INIT:
            _COMPILED_INIT[key] = jax.jit(self.init).lower(jax.random.PRNGKey(0)).compile()
        init = _COMPILED_INIT[key]
        runners = [init(jax.random.PRNGKey(s)) for s in range(self.cfg.seed, self.cfg.seed + self.cfg.num_seeds)]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *runners)
        # the budget is a host-only key: the cached program may hold another run's
        return stacked.replace(total_updates=jnp.full_like(stacked.total_updates, self.cfg.num_updates))

    # -- one PPO update -------------------------------------------------------------------
    def _policy_sample(self, key, out, log_std):
        if self.spec.discrete:
            u = jax.random.categorical(key, out)
            return u, nets.categorical_log_prob(out, u), u
        u = out + jnp.exp(log_std) * jax.random.normal(key, out.shape)
        return u, nets.gaussian_log_prob(out, log_std, u), nets.squash(u, self.low, self.high)

    def _rollout_step(self, r: Runner, _):
        cfg = self.cfg
        key, k_act, k_env = jax.random.split(r.key, 3)
        obs_stats, ws_stats = r.obs_stats, r.ws_stats
        if cfg.normalize_obs:
            obs_stats = obs_stats.update(r.obs)
            ws_stats = ws_stats.update(r.world_state) if self.mappo else ws_stats
        a_in, c_in = self._inputs(r.obs, r.world_state, obs_stats, ws_stats)
        reset = jnp.broadcast_to(r.done[:, None], (cfg.num_envs, self.n))
        h_a, h_c, out, log_std, value = self._heads(r.params, a_in, c_in, r.actor_h, r.critic_h, reset, False)
        u, log_prob, action = self._policy_sample(k_act, out, log_std)
        obs, ws, log, reward, done, info = jax.vmap(self.env.step)(
            jax.random.split(k_env, cfg.num_envs), r.env_log, action)
        t = Transition(a_in, c_in if self.mappo else None, reset, u, log_prob, value, reward, done,
                       info["truncated"], info)
        r = r.replace(env_log=log, obs=obs, world_state=ws, done=done, obs_stats=obs_stats, ws_stats=ws_stats,
                      key=key, actor_h=r.actor_h if h_a is None else h_a,
                      critic_h=r.critic_h if h_c is None else h_c)
        return r, t

    def _loss(self, params, t: Batch, h_a, h_c):
        cfg = self.cfg
        adv, targets = t.adv, t.targets
        c_in = t.actor_in if t.critic_in is None else t.critic_in
        _, _, out, log_std, value = self._heads(params, t.actor_in, c_in, h_a, h_c, t.reset, True)
        if self.spec.discrete:
            log_prob, entropy = nets.categorical_log_prob(out, t.u), nets.categorical_entropy(out)
        else:
            log_prob, entropy = nets.gaussian_log_prob(out, log_std, t.u), nets.gaussian_entropy(log_std)
        log_ratio = log_prob - t.log_prob
        ratio = jnp.exp(log_ratio)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
        v_loss = (value - targets) ** 2
        if cfg.value_clip_eps > 0:
            clipped = t.value + jnp.clip(value - t.value, -cfg.value_clip_eps, cfg.value_clip_eps)
            v_loss = jnp.maximum(v_loss, (clipped - targets) ** 2)
        v_loss = 0.5 * v_loss.mean()
        ent = entropy.mean()
        total = pg + cfg.vf_coef * v_loss - cfg.ent_coef * ent
        stats = {"loss": total, "policy_loss": pg, "value_loss": v_loss, "entropy": ent,
                 "approx_kl": ((ratio - 1) - log_ratio).mean(),
                 "clip_frac": (jnp.abs(ratio - 1) > cfg.clip_eps).mean()}
        return total, stats

    def _minibatches(self, key, data: Batch, h_a, h_c):
        """Shuffle and split into (m, ...) minibatches: transitions (feed-forward) or whole env sequences
        (recurrent). Feed-forward fields are packed into one matrix so each epoch gathers once (one gather
        of wide rows instead of one per field: the same samples, in the same order)."""
        cfg, m = self.cfg, self.cfg.num_minibatches
        if cfg.recurrent:
            perm = jax.random.permutation(key, cfg.num_envs)
            seq = jax.tree.map(lambda x: jnp.swapaxes(
                jnp.take(x, perm, axis=1).reshape(x.shape[0], m, -1, *x.shape[2:]), 0, 1), data)
            hs = jax.tree.map(lambda x: jnp.take(x, perm, axis=0).reshape(m, -1, *x.shape[1:]), (h_a, h_c))
            return (seq, *hs)
        size = cfg.num_steps * cfg.num_envs
        perm = jax.random.permutation(key, size)
        leaves, tree = jax.tree.flatten(data)
        # float32 holds every field exactly (categories are small integers)
        packed = jnp.concatenate([x.reshape(size, -1).astype(jnp.float32) for x in leaves], axis=1)
        widths = np.cumsum([int(np.prod(x.shape[2:], dtype=int)) for x in leaves])[:-1]
        packed = self._shard_samples(jnp.take(packed, perm, axis=0).reshape(m, size // m, -1))
        parts = jnp.split(packed, widths, axis=-1)
        leaves = [p.reshape(m, size // m, *x.shape[2:]).astype(x.dtype) for p, x in zip(parts, leaves)]
        none = jnp.zeros((m,))
        return (tree.unflatten(leaves), none, none)

    def _epoch(self, carry, _):
        params, opt_state, key, data, h_a, h_c = carry
        key, k_perm = jax.random.split(key)

        def minibatch(state, batch):
            params, opt_state = state
            b, mb_h_a, mb_h_c = batch
            if not self.cfg.recurrent:
                mb_h_a = mb_h_c = None
            grads, stats = jax.grad(self._loss, has_aux=True)(params, b, mb_h_a, mb_h_c)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), stats

        (params, opt_state), stats = jax.lax.scan(minibatch, (params, opt_state),
                                                  self._minibatches(k_perm, data, h_a, h_c))
        return (params, opt_state, key, data, h_a, h_c), stats

    def _with_lr(self, r: Runner):
        """Linear decay to 0 over `total_updates`, set once per update (the optimiser's injected LR)."""
        frac = 1.0 - r.update / jnp.maximum(r.total_updates, 1) if self.cfg.anneal_lr else 1.0
        clip_state, adam_state = r.opt_state
        lr = jnp.asarray(self.cfg.lr * jnp.clip(frac, 0.0, 1.0), jnp.float32)
        adam_state = adam_state._replace(hyperparams={**adam_state.hyperparams, "learning_rate": lr})
        return r.replace(opt_state=(clip_state, adam_state))

    def update(self, r: Runner, _=None) -> tuple[Runner, dict]:
        cfg = self.cfg
        r = self._with_lr(r)
        h_a0, h_c0 = r.actor_h, r.critic_h
        r, traj = jax.lax.scan(self._rollout_step, r, None, length=cfg.num_steps)
        a_in, c_in = self._inputs(r.obs, r.world_state, r.obs_stats, r.ws_stats)
        reset = jnp.broadcast_to(r.done[:, None], (cfg.num_envs, self.n))
        *_, last_value = self._heads(r.params, a_in, c_in, r.actor_h, r.critic_h, reset, False)
        adv, targets = gae(traj, last_value, cfg.gamma, cfg.gae_lambda)
        key, k_epochs = jax.random.split(r.key)
        data = Batch(traj.actor_in, traj.critic_in, traj.reset if cfg.recurrent else None, traj.u, traj.log_prob,
                     traj.value, adv, targets)
        (params, opt_state, *_), stats = jax.lax.scan(
            self._epoch, (r.params, r.opt_state, k_epochs, data, h_a0, h_c0), None, length=cfg.update_epochs)
        r = r.replace(params=params, opt_state=opt_state, key=key, update=r.update + 1)
        return r, {**episode_metrics(traj.info), **barrier_metrics(traj.info, self.n),
                   **jax.tree.map(jnp.mean, stats)}

    def _shard_samples(self, x: jax.Array) -> jax.Array:
        """Minibatches (m, B, ...): each device computes its share of every minibatch."""
        if self.mesh is None:
            return x
        return jax.lax.with_sharding_constraint(x, NamedSharding(self.mesh, P(None, "data")))

    def runner_shardings(self) -> Runner | None:
        """Per-field shardings of stacked runners (seed axis first): env axis over the mesh, the rest replicated."""
        if self.mesh is None:
            return None
        env, same = NamedSharding(self.mesh, P(None, "data")), NamedSharding(self.mesh, P())
        shape = jax.eval_shape(self.init, jax.random.PRNGKey(0))
        return shape.replace(**{f.name: jax.tree.map(lambda _, s=env if f.name in ENV_AXIS_FIELDS else same: s,
                                                       getattr(shape, f.name))
                                for f in dataclasses.fields(shape)})

    def chunk_fn(self):
        """jit(vmap over seeds(scan over `updates_per_call` updates)) → (runners, metrics (S, U))."""
        def run(r):
            return jax.lax.scan(self.update, r, None, length=self.cfg.updates_per_call)
        shardings = self.runner_shardings()
        if shardings is None:
            return jax.jit(jax.vmap(run))
        return jax.jit(jax.vmap(run), in_shardings=(shardings,),
                       out_shardings=(shardings, NamedSharding(self.mesh, P())))


def data_mesh(cfg: TrainConfig) -> Mesh | None:
    """The one-axis device mesh of data-parallel training, or None on one device. With several processes
    (policies/distributed.py) the mesh spans every process's devices."""
    available = jax.devices()
    count = cfg.devices or len(available)
    if count > len(available):
        raise ConfigError(f"config key 'devices' asks for {count} devices, the job has {len(available)} "
                          f"({available[0].platform})")
    if jax.process_count() > 1 and count != len(available):
        raise ConfigError(f"training on {jax.process_count()} processes uses all their {len(available)} devices: "
                          f"set devices to 0 (got {count})")
    if count == 1:
        return None
    batch = cfg.num_envs * cfg.num_steps // cfg.num_minibatches
    if cfg.num_envs % count or (not cfg.recurrent and batch % count) or (cfg.recurrent and
                                                                          cfg.num_envs // cfg.num_minibatches % count):
        raise ConfigError(f"data parallel over {count} devices: num_envs ({cfg.num_envs}) and the minibatch "
                          f"({batch} samples) must be divisible by {count} (or set devices)")
    return Mesh(np.asarray(available[:count]), ("data",))


def gae(traj: Transition, last_value: jax.Array, gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets (time-major `traj`). A terminal state ends the return; a time-out does
    not. Its transition's successor is already the next episode's first observation (auto-reset) and the
    observation the episode was cut at is never seen, so that one transition carries no signal (advantage
    0, target its own value) and the step before it bootstraps from its value, as Brax's PPO does."""
    def step(carry, t):
        adv, next_value = carry
        not_done = 1.0 - t.done[:, None].astype(jnp.float32)
        delta = t.reward + gamma * next_value * not_done - t.value
        delta = jnp.where(t.truncated[:, None], 0.0, delta)
        adv = delta + gamma * lam * not_done * adv
        return (adv, t.value), adv

    _, adv = jax.lax.scan(step, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
    return adv, adv + traj.value


def episode_metrics(info: dict) -> dict:
    """Means over the episodes that finished during a rollout (NaN when none did)."""
    done = info["ep_done"].astype(jnp.float32)
    count = done.sum()

    def mean(x):
        return jnp.where(count > 0, (x.astype(jnp.float32) * done).sum() / jnp.maximum(count, 1), jnp.nan)

    return {"return": mean(info["ep_return"]), "success_rate": mean(info["ep_success"]),
            **{k: mean(info[f"ep_{k}"]) for k in EVENT_KEYS},
            "episode_length": mean(info["ep_length"]), "episodes": count}


def barrier_metrics(info: dict, num_agents: int) -> dict:
    """How often and how much the barrier certificate changed the policy's commands during a rollout:
    `barrier_rate` (share of agent-steps changed by more than `envs.BARRIER_TOL`) and `barrier_change`
    (mean ‖safe − policy command‖ over those agent-steps; NaN when none was changed). NaN without a barrier."""
    if "barrier_changed" not in info:
        none = jnp.full((), jnp.nan, jnp.float32)
        return {"barrier_rate": none, "barrier_change": none}
    return barrier_summary(info["barrier_changed"].sum(), info["barrier_change"].sum(),
                           info["barrier_changed"].size * num_agents)
