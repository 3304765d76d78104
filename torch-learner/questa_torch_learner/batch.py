"""A train request's batch: read from its file, dealt to the ranks, cut into micro-batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from questa_torch_learner.protocol import InputProblem


@dataclass(frozen=True)
class Sample:
    """One PPO sample; per-token arrays aligned with tokens, entry 0 unused (as PpoSample)."""

    tokens: np.ndarray  # int64
    loss_mask: np.ndarray  # float32
    advantages: np.ndarray
    behaviour: np.ndarray


def read_batch(path: Path, lengths: list[int], vocab_size: int) -> list[Sample]:
    """The four little-endian arrays of functions/host/torch-batch.ts, one after the other."""
    total = sum(lengths)
    expected = total * 16
    size = path.stat().st_size
    if size != expected:
        raise InputProblem(f"batch {path.name} has {size} bytes; lengths {total} tokens need {expected}")
    raw = path.read_bytes()
    tokens = np.frombuffer(raw, dtype="<i4", count=total, offset=0).astype(np.int64)
    mask = np.frombuffer(raw, dtype="<f4", count=total, offset=4 * total)
    advantages = np.frombuffer(raw, dtype="<f4", count=total, offset=8 * total)
    behaviour = np.frombuffer(raw, dtype="<f4", count=total, offset=12 * total)
    if total > 0 and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise InputProblem(f"a token id is outside the vocabulary [0, {vocab_size})")
    for name, values in (("lossMask", mask), ("advantages", advantages), ("behaviour", behaviour)):
        if not np.isfinite(values).all():
            raise InputProblem(f"{name} holds a value that is not finite")
    samples: list[Sample] = []
    at = 0
    for n in lengths:
        samples.append(
            Sample(tokens[at : at + n], mask[at : at + n], advantages[at : at + n], behaviour[at : at + n])
        )
        at += n
    if sum(float(s.loss_mask[1:].sum()) for s in samples) <= 0:
        raise InputProblem("no token has a non-zero loss mask (mark completion tokens with lossMask 1)")
    return samples


def deal(lengths: list[int], ranks: int) -> list[list[int]]:
    """Sample indices per rank, balancing tokens: longest first, each to the least-loaded rank
    (the lowest on ties), so every rank's forward passes take about as long."""
    load = [0] * ranks
    shares: list[list[int]] = [[] for _ in range(ranks)]
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        r = min(range(ranks), key=lambda r: (load[r], r))
        shares[r].append(i)
        load[r] += lengths[i]
    return shares


@dataclass(frozen=True)
class MicroBatch:
    """Right-padded [B, T] inputs and the [B, T-1] per-target arrays (target t+1 of position t)."""

    input_ids: torch.Tensor
    mask: torch.Tensor
    advantages: torch.Tensor
    behaviour: torch.Tensor


def micro_batches(samples: list[Sample], size: int, count: int, device: torch.device) -> list[MicroBatch]:
    """`count` micro-batches of at most `size` samples. Every rank runs the same number (FSDP's
    collectives run once per forward and backward on every rank): a rank with fewer samples pads
    with micro-batches of one two-token sequence whose loss mask is 0, which add nothing."""
    chunks = [samples[i : i + size] for i in range(0, len(samples), size)]
    dummy = Sample(
        np.zeros(2, dtype=np.int64),
        np.zeros(2, dtype=np.float32),
        np.zeros(2, dtype=np.float32),
        np.zeros(2, dtype=np.float32),
    )
    while len(chunks) < count:
        chunks.append([dummy])
    out: list[MicroBatch] = []
    for chunk in chunks:
        width = max(len(s.tokens) for s in chunk)

        def pack(values: list[np.ndarray], dtype: np.dtype, width: int = width) -> np.ndarray:
            packed = np.zeros((len(values), width), dtype=dtype)
            for row, v in enumerate(values):
                packed[row, : len(v)] = v
            return packed

        ids = pack([s.tokens for s in chunk], np.dtype(np.int64))
        # shifted: column t holds what trains target t + 1
        shifted = lambda values: torch.from_numpy(pack(values, np.dtype(np.float32))[:, 1:]).to(device)  # noqa: E731
        out.append(
            MicroBatch(
                input_ids=torch.from_numpy(ids).to(device),
                mask=shifted([s.loss_mask for s in chunk]),
                advantages=shifted([s.advantages for s in chunk]),
                behaviour=shifted([s.behaviour for s in chunk]),
            )
        )
    return out
