"""The PyTorch column of bench/smollm2.bench.ts: transformers on the CPU, float32, on the folder
`questa model fetch smollm2-135m-instruct` converts, doing what questa's engine does in that bench:
score a batch of sequences, decode with the KV cache at batch 1 and 32, one PPO-style train step
(forward, clipped token loss, backward, AdamW). Configured as an expert would: flush denormals,
the same thread count, inference mode where no gradient is needed. Prints JSON to stdout.

    "$(scripts/install-reference-venv.sh)/bin/python" scripts/reference/bench_smollm2_torch.py \\
        --folder ~/.cache/questa/models/smollm2-135m-instruct-b179c9523d0e --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import AutoModelForCausalLM


def peak_rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 2)


def sequences(count: int, tokens: int, seed: int) -> list[list[int]]:
    """the same fixed token ids as bench/smollm2.bench.ts"""
    return [
        [(seed * 7919 + row * 104_729 + i * 1_299_709) % 49_000 for i in range(tokens)]
        for row in range(count)
    ]


def rate(repeats: int, run: Callable[[], int]) -> dict[str, Any]:
    run()  # warm-up, as in the TypeScript bench
    rates: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        rates.append(round(tokens / (time.perf_counter() - start), 1))
    return {"median": statistics.median_low(rates), "all": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--forward-batch", type=int, default=8)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.folder, dtype=torch.float32)
    model.eval()
    phases: dict[str, Any] = {
        "load": {"seconds": round(time.perf_counter() - start, 2), "peakRssGiB": peak_rss_gib()}
    }

    scored = torch.tensor(sequences(args.forward_batch, args.length, 1))

    def forward() -> int:
        with torch.inference_mode():
            logits = model(scored).logits[:, :-1].float()
            torch.log_softmax(logits, dim=-1).gather(-1, scored[:, 1:, None])
        return args.forward_batch * (args.length - 1)

    phases["forward"] = {
        "batch": args.forward_batch,
        "length": args.length,
        "tokensPerSecond": rate(3, forward),
        "peakRssGiB": peak_rss_gib(),
    }

    for batch in (1, 32):
        prompts = torch.tensor(sequences(batch, 32, 2))

        def decode(prompts: torch.Tensor = prompts, batch: int = batch) -> int:
            with torch.inference_mode():
                out = model.generate(
                    prompts,
                    attention_mask=torch.ones_like(prompts),
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens,
                    do_sample=True,
                    temperature=1.0,
                    top_k=0,
                    top_p=1.0,
                    pad_token_id=2,
                )
            return batch * (out.shape[1] - prompts.shape[1])

        phases[f"decodeBatch{batch}"] = {
            "promptTokens": 32,
            "newTokens": args.new_tokens,
            "tokensPerSecond": rate(3 if batch == 1 else 2, decode),
            "peakRssGiB": peak_rss_gib(),
        }

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)
    tokens = torch.tensor(sequences(args.train_batch, args.length, 3))
    positions = torch.arange(args.length - 1)
    mask = (positions >= 31).float().expand(args.train_batch, -1)
    advantages = (((positions + 1) % 7 - 3) / 3).float().expand(args.train_batch, -1)
    behaviour = torch.full((args.train_batch, args.length - 1), -10.0)

    def train_step() -> int:
        optimizer.zero_grad(set_to_none=True)
        logits = model(tokens).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
        ratio = torch.exp(logp - behaviour)
        clipped = torch.clamp(ratio, 0.8, 1.28)
        loss = -(torch.minimum(ratio * advantages, clipped * advantages) * mask).sum() / mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return args.train_batch * (args.length - 32)

    phases["trainStep"] = {
        "batch": args.train_batch,
        "length": args.length,
        "tokensPerSecond": rate(2, train_step),
        "peakRssGiB": peak_rss_gib(),
    }
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "phases": phases,
                "peakRssGiB": peak_rss_gib(),
            }
        )
    )


if __name__ == "__main__":
    main()
