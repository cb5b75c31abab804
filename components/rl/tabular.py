"""Tabular Q-learning: the update rule, epsilon-greedy action choice, and value iteration for Q*.

All pure numpy. The environment's own model (``env.unwrapped.P``, a dict
``P[s][a] = [(prob, next_state, reward, terminated), ...]`` as gymnasium's toy-text envs expose)
gives Q* by value iteration, which the learned table is checked against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Model = Mapping[int, Mapping[int, Sequence[tuple[float, int, float, bool]]]]


def q_update(
    q: np.ndarray,  # [S, A], updated in place
    state: int,
    action: int,
    reward: float,
    next_state: int,
    terminated: bool,
    alpha: float,
    gamma: float,
) -> float:
    """One Q-learning step: Q(s,a) ← Q(s,a) + α[r + γ·max_a' Q(s',a') − Q(s,a)].

    A terminal transition has no future: the target is r alone. A time-limit truncation is not
    terminal (the caller passes ``terminated`` only), so it still bootstraps. Returns the TD error.
    """
    target = reward if terminated else reward + gamma * float(np.max(q[next_state]))
    td_error = target - q[state, action]
    q[state, action] += alpha * td_error
    return float(td_error)


def greedy_action(q_row: np.ndarray, rng: np.random.Generator) -> int:
    """argmax with ties broken at random, so an all-zero table does not always pick action 0."""
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[0] if best.size == 1 else rng.choice(best))


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability ε a uniform random action, otherwise a greedy one."""
    if rng.random() < epsilon:
        return int(rng.integers(q_row.shape[0]))
    return greedy_action(q_row, rng)


def bellman_backup(q: np.ndarray, model: Model, gamma: float) -> np.ndarray:
    """(T Q)(s,a) = Σ_{s'} p(s'|s,a)·[r + γ·(1 − terminal)·max_a' Q(s',a')]."""
    v = q.max(axis=1)
    out = np.zeros_like(q)
    for s, actions in model.items():
        for a, transitions in actions.items():
            out[s, a] = sum(p * (r + (0.0 if term else gamma * v[s2])) for p, s2, r, term in transitions)
    return out


def value_iteration(
    model: Model, n_states: int, n_actions: int, gamma: float, tol: float = 1e-12, max_iters: int = 100_000
) -> np.ndarray:
    """Q* by repeated Bellman optimality backups until the largest change is below ``tol``.

    The backup is a γ-contraction in the sup norm, so for γ < 1 the loop converges from zeros.
    Vectorised over transitions: the model is flattened once into arrays.
    """
    rows, probs, nexts, rewards, live = [], [], [], [], []
    for s, actions in model.items():
        for a, transitions in actions.items():
            for p, s2, r, term in transitions:
                rows.append(s * n_actions + a)
                probs.append(p)
                nexts.append(s2)
                rewards.append(r)
                live.append(0.0 if term else 1.0)
    rows_a, p_a, n_a = np.array(rows), np.array(probs, float), np.array(nexts)
    r_a, live_a = np.array(rewards, float), np.array(live)
    expected_r = np.bincount(rows_a, p_a * r_a, minlength=n_states * n_actions)
    q = np.zeros(n_states * n_actions)
    for _ in range(max_iters):
        v = q.reshape(n_states, n_actions).max(axis=1)
        new = expected_r + gamma * np.bincount(rows_a, p_a * live_a * v[n_a], minlength=n_states * n_actions)
        delta = np.max(np.abs(new - q))
        q = new
        if delta < tol:
            break
    return q.reshape(n_states, n_actions)


def successful_terminal_reward(model: Model) -> float:
    """The largest reward on any terminal transition: reaching it counts as a success.

    FrozenLake pays 1 at the goal and 0 in a hole; Taxi pays 20 for a drop-off; CliffWalking
    pays −1 for the step into the goal (the cliff sends you back without ending the episode).
    """
    rewards = [r for acts in model.values() for trans in acts.values() for _, _, r, term in trans if term]
    return max(rewards) if rewards else float("inf")


def return_is_success(model: Model) -> bool:
    """Whether an episode's return is 1 for a success and 0 otherwise (FrozenLake: 1 at the goal,
    nothing anywhere else): then the success rate is the mean return, the same number twice."""
    goal = successful_terminal_reward(model)
    return goal == 1.0 and all(
        r == 0.0 or (term and r == goal)
        for acts in model.values()
        for trans in acts.values()
        for _, _, r, term in trans
    )
