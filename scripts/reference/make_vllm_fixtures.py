"""The vLLM rollout engine's fixtures: a tiny random Qwen2 folder vLLM's CPU build can serve, and
what transformers computes on it.

vLLM's CPU attention supports head sizes 32, 64, 80, ... only (the tiny-qwen2 fixture's 16 starts,
then fails the first request), so this model is tiny-qwen2's sibling with 2 heads of 32 (GQA 2:1):

- test/fixtures/hf/tiny-qwen2-vllm/                 the folder, as transformers saved it (bf16, the
                                                    tiny models' byte-level BPE tokenizer and ChatML
                                                    template, Qwen2.5-style config.json)
- test/fixtures/hf/tiny-qwen2-vllm.reference.json   chat prompts rendered by the folder's template
                                                    (token ids), each one's greedy continuation to a
                                                    stop token or 24 tokens (generate, KV cache) with
                                                    every token's log-prob and the smallest top-1/top-2
                                                    logit gap along it, in float32

test/scale/vllm-sampler.test.ts samples the same prompts through vLLM with top-k 1 and compares.
Run from the repository root (seeded; reruns reproduce the same files):

    "$(scripts/install-reference-venv.sh)/bin/python" scripts/reference/make_vllm_fixtures.py
"""

from __future__ import annotations

import json
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from make_hf_fixtures import COMMON, HF_FIXTURES, ModelSpec, save_model, tiny_tokenizer

SPEC = ModelSpec(
    name="tiny-qwen2-vllm",
    model_type="qwen2",
    config={
        **COMMON,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    },
    dtype=torch.bfloat16,
    config_dialect="v4",
    chat_template_in_config=True,
    notes=["head size 32 (2 heads, GQA 2:1) for vLLM's CPU attention, q/k/v biases, tied, bf16"],
)
SEED = 20261230  # the first seed from 20261210 whose greedy margins clear the assert below
MAX_NEW_TOKENS = 24
PROBLEMS = [
    "What is 7+5*3?",
    "Let $x$ be a positive real with $x^2 = 2x + 3$. Find $x$.\n\n## Hint.We factor: $(x-3)(x+1)=0$",
    "Compute 12*3-8 modulo 31.",
]


def greedy_with_log_probs(model: torch.nn.Module, prompt: list[int], stops: list[int]) -> dict[str, Any]:
    """Greedy tokens up to a stop token (kept) or MAX_NEW_TOKENS, each with its log-prob (float32)."""
    out = model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
        max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        eos_token_id=stops,
        pad_token_id=0,
        output_logits=True,
        return_dict_in_generate=True,
    )
    tokens = out.sequences[0, len(prompt) :].tolist()
    log_probs = []
    margins = []
    for token, step_logits in zip(tokens, out.logits, strict=False):
        logits = step_logits[0].float()
        log_probs.append(float(torch.log_softmax(logits, dim=-1)[token]))
        top = torch.topk(logits, 2).values
        margins.append(float(top[0] - top[1]))
    return {"promptTokens": prompt, "tokens": tokens, "logProbs": log_probs, "minMargin": min(margins)}


def main() -> None:
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True)
    folder = save_model(SPEC, tiny_tokenizer(), seed=SEED)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    stops = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    prompts = []
    for problem in PROBLEMS:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": problem}],
            tokenize=True,
            add_generation_prompt=True,
            return_dict=False,
        )
        with torch.no_grad():
            prompts.append({"problem": problem, **greedy_with_log_probs(model, list(ids), stops)})
    worst = min(p["minMargin"] for p in prompts)
    # greedy parity is only meaningful where float noise cannot flip the top token
    assert worst > 0.02, f"greedy top-2 margin {worst} too small; pick another seed"
    meta = {
        "model": SPEC.name,
        "notes": SPEC.notes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "stopTokens": stops,
        "maxNewTokens": MAX_NEW_TOKENS,
        "prompts": prompts,
        "made": {"torch": torch.__version__, "transformers": _transformers_version()},
    }
    (HF_FIXTURES / f"{SPEC.name}.reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{SPEC.name}: {meta['parameters']} parameters, greedy margin {worst:.4f}")


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


if __name__ == "__main__":
    main()
