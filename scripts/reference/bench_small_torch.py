"""The PyTorch column of bench/engine.bench.ts's small case: questa's built-in 2-layer width-128
policy (GELU MLP 4x width, LayerNorm with scale and bias, learned positions, tied embeddings, no
biases in the projections) written in plain PyTorch, eager, float32, on the CPU, doing what the
bench asks of questa's engine: score 32 x 128 tokens (log-prob of each target and the entropy),
sample with a KV cache (16-token prompts, 64 new tokens, temperature 1), one decoupled-PPO train
step (clipped surrogate, capped behaviour weight, token mean) with grad-norm clipping and AdamW.
Configured as an expert would: flush denormals, the same thread count, inference mode where no
gradient is needed, a preallocated KV cache, the faster attention (see --attention).

It is a long-lived child so that the bench can alternate rounds (ours, theirs, ours, ...): it
prints one JSON line when ready, then reads one command per line on stdin and answers each with one
JSON line timing one round: `forward`, `decode BATCH`, `train`, `quit`.

    "$(scripts/install-reference-venv.sh)/bin/python" scripts/reference/bench_small_torch.py \\
        --threads 2 --parameters 439936
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# the synthetic task's character vocabulary; ids 0-2 are special, the bench draws 3..98
VOCAB = 99
FIRST_TOKEN = 3


class Block(nn.Module):
    def __init__(self, width: int, heads: int, attention: str) -> None:
        super().__init__()
        self.heads = heads
        self.attention = attention
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.mlp_norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width, bias=False)
        self.down = nn.Linear(4 * width, width, bias=False)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        if self.attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
        if causal:
            t = q.shape[-2]
            scores = scores.masked_fill(
                torch.ones(t, t, dtype=torch.bool).triu(1), torch.finfo(scores.dtype).min
            )
        return scores.softmax(-1) @ v

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None, start: int
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            # write the new keys and values into the preallocated cache, attend over what it holds
            cache[0][:, :, start : start + t] = k
            cache[1][:, :, start : start + t] = v
            k, v = cache[0][:, :, : start + t], cache[1][:, :, : start + t]
        # a prompt (start 0) is causal; one new token attends to every cached slot
        heads = self.attend(q, k, v, causal=t > 1)
        x = x + self.out(heads.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.mlp_norm(x)), approximate="tanh"))


class SmallPolicy(nn.Module):
    """questa's ModelConfig {layers, width, heads, maxSeqLen} with the defaults, initialised as
    functions/model/params.ts does (normal 0.02, residual projections 0.02 / sqrt(2 layers),
    positions 0.01, norms 1 and 0)"""

    def __init__(self, layers: int, width: int, heads: int, max_seq_len: int, attention: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.pos = nn.Embedding(max_seq_len, width)
        self.blocks = nn.ModuleList(Block(width, heads, attention) for _ in range(layers))
        self.final_norm = nn.LayerNorm(width)
        with torch.no_grad():
            nn.init.normal_(self.embed.weight, std=0.02)
            nn.init.normal_(self.pos.weight, std=0.01)
            for block in self.blocks:
                assert isinstance(block, Block)
                nn.init.normal_(block.qkv.weight, std=0.02)
                nn.init.normal_(block.up.weight, std=0.02)
                nn.init.normal_(block.out.weight, std=0.02 / math.sqrt(2 * layers))
                nn.init.normal_(block.down.weight, std=0.02 / math.sqrt(2 * layers))

    def forward(
        self,
        tokens: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """logits [B, T, V] of tokens [B, T] at positions start..start+T-1 (tied head)"""
        x = self.embed(tokens) + self.pos.weight[start : start + tokens.shape[1]]
        for layer, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[layer], start)
        return F.linear(self.final_norm(x), self.embed.weight)

    def decay_groups(self, weight_decay: float) -> list[dict[str, object]]:
        """weight decay on the matrices (embedding included), none on norms and positions, as
        questa's paramLayout marks them"""
        decay = [p for n, p in self.named_parameters() if p.ndim == 2 and not n.startswith("pos.")]
        rest = [p for n, p in self.named_parameters() if p.ndim != 2 or n.startswith("pos.")]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def random_tokens(rows: int, length: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(FIRST_TOKEN, VOCAB, (rows, length), generator=generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--parameters", type=int, required=True, help="questa's paramCount, asserted equal")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="forward and train rows")
    parser.add_argument("--length", type=int, default=128, help="forward and train positions")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    # sdpa: PyTorch's fused CPU attention kernel; math: matmul, softmax, matmul. sdpa was the faster
    # at every shape here (torch 2.13, 2 threads, best of 5): one decode step's attention 18 vs 50 us
    # at batch 1, 1.2 vs 1.7 ms at 256; 32 x 128 causal 5.5 vs 16 ms forward, 25 vs 45 ms with backward.
    parser.add_argument("--attention", choices=["sdpa", "math"], default="sdpa")
    args = parser.parse_args()

    if "OMP_WAIT_POLICY" not in os.environ:
        # PyTorch's OpenMP threads otherwise spin between parallel sections; on the shared 2-core box
        # that cost 5-50x (decode at batch 1: 25 vs 1,200 tok/s, train step 2.7K vs 15K), as spinning
        # does to onnxruntime, which questa runs with spinning off. libgomp reads this when torch
        # loads: start again with it set.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = SmallPolicy(args.layers, args.width, args.heads, args.max_seq_len, args.attention)
    parameters = sum(p.numel() for p in model.parameters())
    if parameters != args.parameters:
        sys.exit(f"bench_small_torch: {parameters} parameters, questa's model has {args.parameters}")
    generator = torch.Generator().manual_seed(2)

    # the bench's sequences: B rows of T + 1 tokens, scored / trained on T predictions each
    sequences = random_tokens(args.batch, args.length + 1, generator)
    inputs, targets = sequences[:, :-1], sequences[:, 1:]

    def forward() -> int:
        with torch.inference_mode():
            log_probs = model(inputs).log_softmax(-1)
            logp = log_probs.gather(-1, targets[..., None]).squeeze(-1)
            # the entropy too, as questa's scoring graph outputs both
            scored = torch.stack([logp, -(log_probs.exp() * log_probs).sum(-1)])
        return scored[0].numel()

    # hyperparams.ts defaults but lr (the bench passes 1e-4): betas 0.9 / 0.95, eps 1e-5, weight
    # decay 0.05, max grad norm 1, clip 0.2 / 0.2, behaviour importance weight cap 5 (mask above)
    # fused: the single-kernel CPU AdamW (with the norm clipping 1.6 ms a step, foreach 3.4, loop 4.7)
    optimizer = torch.optim.AdamW(
        model.decay_groups(0.05), lr=args.lr, betas=(0.9, 0.95), eps=1e-5, fused=True
    )
    positions = torch.arange(args.length)
    # prediction t targets token t + 1; questa's bench masks tokens 0-15 (the prompt)
    mask = (positions + 1 >= args.prompt_tokens).float().expand(args.batch, -1)
    advantages = torch.rand(args.batch, args.length, generator=generator) - 0.5
    behaviour = torch.full((args.batch, args.length), -math.log(VOCAB))
    proximal = behaviour  # the bench passes no proximal log-probs: questa then uses the behaviour's
    clip_low, clip_high, weight_cap = 0.2, 0.2, 5.0

    def train() -> int:
        optimizer.zero_grad(set_to_none=True)
        log_probs = model(inputs).log_softmax(-1)
        logp = log_probs.gather(-1, targets[..., None]).squeeze(-1)
        log_ratio = logp - proximal
        ratio = log_ratio.exp()
        surrogate = torch.minimum(ratio * advantages, ratio.clamp(1 - clip_low, 1 + clip_high) * advantages)
        raw_weight = (proximal - behaviour).exp()
        weight = torch.where(raw_weight <= weight_cap, raw_weight, 0.0)
        per_token = -surrogate * weight
        tokens = mask.sum()
        (per_token * mask).sum().div(tokens).backward()
        with torch.no_grad():
            # the metrics questa's train graph sums beside the loss
            detached = log_probs.detach()
            entropy = -(detached.exp() * detached).sum(-1)
            clipped = ((advantages > 0) & (ratio > 1 + clip_high)) | (
                (advantages < 0) & (ratio < 1 - clip_low)
            )
            sums = torch.stack(
                [
                    (entropy * mask).sum(),
                    (clipped.float() * mask).sum(),
                    ((ratio - 1 - log_ratio) * mask).sum(),
                    (per_token * mask).sum(),
                    (weight * mask).sum(),
                ]
            )
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        sums.tolist()
        return inputs.numel()

    prompts: dict[int, torch.Tensor] = {}

    def decode(batch: int) -> int:
        if batch not in prompts:  # the same prompts every round, as the bench's
            prompts[batch] = random_tokens(batch, args.prompt_tokens, generator)
        prompt = prompts[batch]
        heads, head_dim = args.heads, args.width // args.heads
        capacity = args.prompt_tokens + args.new_tokens - 1  # the last sampled token is never fed
        cache = [
            (
                torch.empty(batch, heads, capacity, head_dim),
                torch.empty(batch, heads, capacity, head_dim),
            )
            for _ in range(args.layers)
        ]
        generated: list[torch.Tensor] = []
        log_probs: list[torch.Tensor] = []
        with torch.inference_mode():
            logits = model(prompt, cache)[:, -1]
            for step in range(args.new_tokens):
                # temperature 1, no top-k / top-p; the sampled token's log-prob is kept, as a rollout needs
                step_log_probs = logits.log_softmax(-1)
                token = torch.multinomial(step_log_probs.exp(), 1, generator=generator)
                generated.append(token)
                log_probs.append(step_log_probs.gather(-1, token))
                if step + 1 < args.new_tokens:
                    logits = model(token, cache, args.prompt_tokens + step)[:, -1]
            out = torch.cat(generated, 1)
        return out.numel()

    def timed(phase: str, run: Callable[[], int]) -> dict[str, object]:
        start = time.perf_counter()
        tokens = run()
        seconds = time.perf_counter() - start
        return {
            "phase": phase,
            "tokens": tokens,
            "seconds": seconds,
            "tokensPerSecond": tokens / seconds,
            "peakRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }

    def reply(message: dict[str, object]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply(
        {
            "ready": True,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "parameters": parameters,
            "attention": args.attention,
            "ompWaitPolicy": os.environ["OMP_WAIT_POLICY"],
        }
    )
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "quit":
            break
        if command[0] == "forward":
            reply(timed("forward", forward))
        elif command[0] == "train":
            reply(timed("train", train))
        elif command[0] == "decode" and len(command) == 2:
            batch = int(command[1])
            reply(timed(f"decodeBatch{batch}", lambda batch=batch: decode(batch)))
        else:
            reply({"error": f"unknown command {line.strip()!r}"})


if __name__ == "__main__":
    main()
