"""CleanRL-style PPO (plain torch, one file) on the native Othello vector env.

    python examples/cleanrl_ppo_vector.py --num-envs 2048 --iterations 30   # a few minutes
    python examples/cleanrl_ppo_vector.py --smoke                           # seconds

The envs come from ``gym.make_vec("Othello-v0", num_envs=N,
vectorization_mode="vector_entry_point")``: thousands of games stepped by Numba kernels
in one call, the agent's colour random per game, the opponent uniformly random.

Autoreset (Gymnasium's NEXT_STEP mode): a row that ended at step t is reset by step
t+1, which ignores that row's action and returns reward 0. Such a row's mask at t+1 is
"pass only" (not all zero), so the -inf masked Categorical below stays finite; the
transition itself is no decision of the agent, so it is left out of the loss and the
advantages (``valid`` below), and GAE does not bootstrap across the episode end.

Prints env-steps/s (agent steps of all rows per wall-clock second, policy and updates
included; also per second of this process's CPU time, the steadier figure on a shared
machine) and the win rate against random of the games that ended in each iteration.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Categorical

import othello_env  # noqa: F401  (registers Othello-v0 and its vector entry point)


class Agent(nn.Module):
    """Board (B, 3, 8, 8) -> masked policy logits (B, 65) and value (B,)."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(192, hidden), nn.Tanh(),
                                  nn.Linear(hidden, hidden), nn.Tanh())
        self.pi = nn.Linear(hidden, 65)
        self.v = nn.Linear(hidden, 1)
        nn.init.orthogonal_(self.pi.weight, 0.01)  # near-uniform first policy, as CleanRL
        nn.init.zeros_(self.pi.bias)

    def forward(self, obs, mask):
        h = self.body(obs.float())
        # illegal actions get -inf; every row has at least one legal action (pass-only when ended)
        logits = self.pi(h).masked_fill(~mask, float("-inf"))
        return Categorical(logits=logits), self.v(h).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=2048)
    parser.add_argument("--num-steps", type=int, default=32, help="rollout length per env")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--update-epochs", type=int, default=2)
    parser.add_argument("--minibatches", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--clip", type=float, default=0.2)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--vf-coef", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--smoke", action="store_true", help="64 envs, 2 iterations of 40 steps (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.num_envs, args.num_steps, args.iterations = 64, 40, 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    envs = gym.make_vec("Othello-v0", num_envs=args.num_envs,
                        vectorization_mode="vector_entry_point", agent_color="random")
    n, t_len = args.num_envs, args.num_steps
    agent = Agent()
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)

    obs_buf = torch.zeros((t_len, n, 3, 8, 8), dtype=torch.int8)
    mask_buf = torch.zeros((t_len, n, 65), dtype=torch.bool)
    act_buf = torch.zeros((t_len, n), dtype=torch.long)
    logp_buf = torch.zeros((t_len, n))
    val_buf = torch.zeros((t_len, n))
    rew_buf = torch.zeros((t_len, n))
    done_buf = torch.zeros((t_len, n))
    valid_buf = torch.zeros((t_len, n), dtype=torch.bool)

    obs_np, info = envs.reset(seed=args.seed)
    obs, mask = torch.from_numpy(obs_np), torch.from_numpy(info["action_mask"].astype(bool))
    ended = torch.zeros(n, dtype=torch.bool)  # row ended last step: this step autoresets it
    start, cpu_start, env_steps = time.perf_counter(), time.process_time(), 0
    first_rate = last_rate = float("nan")
    for it in range(args.iterations):
        wins = games = 0
        for t in range(t_len):
            obs_buf[t], mask_buf[t], valid_buf[t] = obs, mask, ~ended
            with torch.no_grad():
                dist, value = agent(obs, mask)
                action = dist.sample()
            act_buf[t], logp_buf[t], val_buf[t] = action, dist.log_prob(action), value
            obs_np, reward, term, trunc, info = envs.step(action.numpy())
            done = term | trunc
            rew_buf[t], done_buf[t] = torch.from_numpy(reward).float(), torch.from_numpy(done).float()
            wins += int((reward[done] > 0).sum())
            games += int(done.sum())
            obs, mask = torch.from_numpy(obs_np), torch.from_numpy(info["action_mask"].astype(bool))
            ended = torch.from_numpy(done)
        env_steps += n * t_len

        # GAE over valid steps; an autoreset step has advantage 0 and is no bootstrap target
        with torch.no_grad():
            _, next_value = agent(obs, mask)
            adv = torch.zeros((t_len, n))
            last = torch.zeros(n)
            for t in reversed(range(t_len)):
                nv = next_value if t == t_len - 1 else val_buf[t + 1]
                nonterminal = 1.0 - done_buf[t]
                delta = rew_buf[t] + args.gamma * nv * nonterminal - val_buf[t]
                last = delta + args.gamma * args.gae_lambda * nonterminal * last
                last = torch.where(valid_buf[t], last, torch.zeros(n))
                adv[t] = last
            ret = adv + val_buf

        valid = valid_buf.reshape(-1)
        b_obs, b_mask = obs_buf.reshape(-1, 3, 8, 8)[valid], mask_buf.reshape(-1, 65)[valid]
        b_act, b_logp = act_buf.reshape(-1)[valid], logp_buf.reshape(-1)[valid]
        b_adv, b_ret = adv.reshape(-1)[valid], ret.reshape(-1)[valid]
        b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)  # over the whole batch
        for _ in range(args.update_epochs):
            for idx in torch.randperm(b_act.numel()).chunk(args.minibatches):
                dist, value = agent(b_obs[idx], b_mask[idx])
                ratio = (dist.log_prob(b_act[idx]) - b_logp[idx]).exp()
                a = b_adv[idx]
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - args.clip, 1 + args.clip)).mean()
                v_loss = 0.5 * (value - b_ret[idx]).pow(2).mean()
                loss = pg + args.vf_coef * v_loss - args.ent_coef * dist.entropy().mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optimizer.step()

        rate = wins / max(games, 1)
        first_rate = rate if it == 0 else first_rate
        last_rate = rate
        sps = env_steps / (time.perf_counter() - start)
        cpu_sps = env_steps / (time.process_time() - cpu_start)  # the figure on a shared machine
        print(f"iteration {it + 1}/{args.iterations}: {games} games, win rate {rate:.3f}, "
              f"env-steps/s {sps:,.0f} (per CPU second {cpu_sps:,.0f})")
    print(f"PPO on the native vector env ({n} envs): env-steps/s {sps:,.0f} "
          f"(per CPU second {cpu_sps:,.0f}), "
          f"win rate vs random first iteration {first_rate:.3f}, last {last_rate:.3f}")


if __name__ == "__main__":
    main()
