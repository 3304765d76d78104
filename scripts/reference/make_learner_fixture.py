"""The tiny model the torch learner's parity and scale tests train (test/scale/), made by transformers.

A random Qwen2 (qkv biases, tied embeddings: the head shares the embedding, which FSDP2 must keep
shared) in float32, so that the weights one training step writes compare with questa's ONNX learner
without a bf16 rounding in between. The tokenizer and its chat template (in tokenizer_config.json)
are tiny-qwen2's (make_hf_fixtures.py). Seeded; a rerun writes the same files:

    "$(scripts/install-reference-venv.sh --kind learner)/bin/python" scripts/reference/make_learner_fixture.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER_FROM = ROOT / "test" / "fixtures" / "hf" / "tiny-qwen2"
OUT = ROOT / "test" / "fixtures" / "hf" / "tiny-learner"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def main() -> None:
    torch.manual_seed(22)
    config = Qwen2Config(
        vocab_size=384,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        initializer_range=0.05,
    )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    shutil.rmtree(OUT, ignore_errors=True)
    model.save_pretrained(OUT)
    for name in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_FROM / name, OUT / name)
    print(f"wrote {OUT.relative_to(ROOT)}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
