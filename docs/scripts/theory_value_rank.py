"""Is the value-dimension lower bound rank(D) >= v - 2 (docs/THEORY.md) reached?

Fits the minimal model's functional form f(S, l) = B[l] + sum_{i in S} a_i(l, S) D[i]
(B: v x v, D = H G^T of rank <= d, softmax attention a_i ~ exp(Sig[l, i]) over S) to every input
with a hinge loss on every (absent, present) pair, then turns a solution into a real lgagent
GPT of width v (E = I, U = B^T, W_V = H^T on d coordinates, W_O = B^-T G, W_Q^T W_K = sqrt(v) Sig) and
checks it exhaustively with agents.construct.exhaustive_check: a witness, verified on every
input, that rank d = v - 2 suffices for that v; rank v - 3 must fail (the bound).

python docs/scripts/theory_value_rank.py > docs/results/theory_value_rank.txt  (1 thread, minutes)
"""
import math

import torch

from agents.config import preset
from agents.construct import all_inputs, exhaustive_check
from agents.model import GPT

torch.set_num_threads(1)


def fit(v, d, seed, steps=3000):
    tokens, lengths, present = all_inputs(v)
    last = tokens[torch.arange(len(tokens)), lengths - 1]
    g = torch.Generator().manual_seed(seed)
    B, H, G, Sig = (torch.randn(*s, generator=g).mul(0.5).requires_grad_()
                    for s in ((v, v), (v, d), (v, d), (v, v)))
    opt = torch.optim.Adam([B, H, G, Sig], lr=0.03)
    mask = (~present)[:, :, None] & present[:, None, :]
    for _ in range(steps):
        a = Sig[last].masked_fill(~present, -math.inf).softmax(1)
        z = B[last] + a @ (H @ G.T)
        gap = z[:, :, None] - z[:, None, :]
        loss = torch.relu(1 - gap)[mask].mean() + 1e-4 * sum((p ** 2).sum() for p in (B, H, G, Sig))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return B.detach().double(), H.detach().double(), G.detach().double(), Sig.detach().double()


def to_gpt(B, H, G, Sig):
    """A width-v GPT computing B[l] + sum_i a_i (H G^T)[i]: the value has d = H.shape[1]
    non-zero coordinates (W_V = H^T, W_O = B^-T G), so rank(W_O W_V) <= d in any precision."""
    v, d = H.shape
    model = GPT(preset("setcomp-1l", vocab_size=v + 1, block_size=v - 1, n_embd=v))
    E = torch.zeros(v + 1, v, dtype=torch.float64)
    E[:v] = torch.eye(v, dtype=torch.float64)
    Wv = torch.zeros(v, v, dtype=torch.float64)
    Wv[:d] = H.T  # value_t = h_t in the first d coordinates
    Wo = torch.zeros(v, v, dtype=torch.float64)
    Wo[:, :d] = torch.linalg.solve(B.T, G)  # U_j . Wo h_t = (H G^T)[t, j] with U_j = B[:, j]
    Wq = torch.eye(v, dtype=torch.float64)
    Wk = math.sqrt(v) * Sig  # q_l . k_i / sqrt(v) = Sig[l, i]
    U = torch.zeros(v + 1, v, dtype=torch.float64)
    U[:v] = B.T
    U[v] = -B.abs().sum(0)  # PAD: never scored; some finite row
    state = {"wte.weight": E, "blocks.0.attn.c_attn.weight": torch.cat([Wq, Wk, Wv]),
             "blocks.0.attn.c_proj.weight": Wo, "lm_head.weight": U}
    model.load_state_dict({k: t.float() for k, t in state.items()})
    used = int((model.blocks[0].attn.c_attn.weight[2 * v:].abs().sum(1) > 0).sum())
    return model.eval(), used


print("# v  d = rank(D)  seed: the GPT built from the fit (its value has d non-zero coordinates),\n"
      "# checked on every input")
for v in (4, 5, 6):
    for d in (v - 3, v - 2):
        found = False
        for seed in range(4):
            B, H, G, Sig = fit(v, d, seed)
            model, used = to_gpt(B, H, G, Sig)
            r = exhaustive_check(model, v)
            worst = min(e["margin_min"] for e in r["per_length"])
            print(f"v={v} d={d} seed={seed}: non-zero value coordinates {used}, separated every input: "
                  f"{r['separated']} (worst margin {worst:+.4f}, {r['inputs']} inputs)", flush=True)
            if r["separated"]:
                found = True
                break
        if not found:
            print(f"v={v} d={d}: no solution found in 4 fits (d < v - 2 is impossible: docs/THEORY.md)")
