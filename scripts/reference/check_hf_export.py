"""Checks a Hugging Face folder written by questa against transformers, the reference implementation.

For each FOLDER (e.g. a run's `checkpoints/step-N/hf/`, or `questa model export` output):
1. transformers loads it strictly: no missing, unexpected or mismatched weights, and its tokenizer;
2. transformers' logits on fixed token sequences equal questa's engine's logits on the same folder
   (scripts/model-logits.ts) within 1e-4;
3. with --fixture NAME (a test/fixtures/hf model the folder was exported from unchanged), also equal
   the logits recorded in that fixture.

    "$(scripts/install-reference-venv.sh)/bin/python" scripts/reference/check_hf_export.py FOLDER...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4


def questa_logits(folder: Path, sequences: list[list[int]]) -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory() as tmp:
        seq_path = Path(tmp) / "sequences.json"
        out_path = Path(tmp) / "logits.safetensors"
        seq_path.write_text(json.dumps(sequences))
        subprocess.run(
            ["npx", "tsx", "scripts/model-logits.ts", str(folder), str(seq_path), str(out_path)],
            cwd=ROOT,
            check=True,
        )
        return load_file(str(out_path))


def check(folder: Path, fixture: str | None) -> list[str]:
    problems: list[str] = []
    model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(kind):
            problems.append(f"{kind}: {info[kind]}")
    AutoTokenizer.from_pretrained(folder)
    model.eval()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(1)
    sequences = [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in (19, 7)]
    if fixture is not None:
        sequences = json.loads((ROOT / "test/fixtures/hf" / f"{fixture}.reference.json").read_text())[
            "sequences"
        ]
    ours = questa_logits(folder, sequences)
    recorded = (
        load_file(str(ROOT / "test/fixtures/hf" / f"{fixture}.reference.safetensors")) if fixture else {}
    )
    for i, s in enumerate(sequences):
        with torch.no_grad():
            theirs = model(input_ids=torch.tensor([s])).logits[0].float()
        diff = (theirs - ours[f"logits.{i}"]).abs().max().item()
        print(f"{folder}: sequence {i} ({len(s)} tokens): max |transformers - questa| = {diff:.2e}")
        if not diff <= TOLERANCE:
            problems.append(f"sequence {i}: logits differ by {diff:.2e} > {TOLERANCE}")
        if fixture is not None:
            fixed = (theirs - recorded[f"logits.{i}"]).abs().max().item()
            print(f"{folder}: sequence {i}: max |transformers - fixture {fixture}| = {fixed:.2e}")
            if not fixed <= TOLERANCE:
                problems.append(f"sequence {i}: differs from the fixture by {fixed:.2e}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--fixture", help="fixture the folders were exported from, unchanged")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    failed = False
    for folder in args.folders:
        problems = check(folder, args.fixture)
        print(f"{folder}: {'OK' if not problems else 'FAILED'}")
        for p in problems:
            print(f"  {p}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
