"""The decoupled PPO loss of questa's ONNX learner (functions/model/transformer.ts, ppoLoss), term
for term: the proximal policy is the current parameters held constant (one update per step), the
behaviour importance weight exp(proximal - behaviour) is kept up to `importance_cap` and is 0 above
it (AReaL's masking, the ONNX learner's default), the surrogate is clipped at 1 - clip_low and
1 + clip_high (clip-higher), plus kl_coef x the k3 estimate of KL(policy || reference) when a
reference is given, minus entropy_coef x entropy per token; every sum is over trained tokens, and
the step's loss divides by the trained tokens of the whole batch (all ranks)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PpoCoefficients:
    clip_low: float
    clip_high: float
    importance_cap: float
    entropy_coef: float
    kl_coef: float


# the per-rank sums reduced across ranks, in this order
SUMS = ("loss", "entropy", "clipped", "approx_kl", "log_prob_gap", "kl_ref")


def target_log_probs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position t < T-1 (target = input t+1), in float32."""
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def token_stats(
    logits: torch.Tensor, input_ids: torch.Tensor, with_entropy_grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) and the policy entropy at each position t < T-1 (target = input t+1), in float32."""
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    logp = log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    if with_entropy_grad:
        entropy = -(log_probs.exp() * log_probs).sum(-1)
    else:
        with torch.no_grad():
            entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logp, entropy


def ppo_sums(
    logp: torch.Tensor,
    entropy: torch.Tensor,
    advantages: torch.Tensor,
    behaviour: torch.Tensor,
    mask: torch.Tensor,
    c: PpoCoefficients,
    reference: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss summed over masked tokens, with gradient; the SUMS as one detached vector).
    `reference`: the reference policy's log-probs of the same targets, needed when kl_coef > 0."""
    proximal = logp.detach()
    log_ratio = logp - proximal
    ratio = torch.exp(log_ratio)
    lo, hi = 1.0 - c.clip_low, 1.0 + c.clip_high
    surr1 = ratio * advantages
    surr2 = torch.clamp(ratio, lo, hi) * advantages
    raw_weight = torch.exp(proximal - behaviour)
    weight = torch.where(raw_weight <= c.importance_cap, raw_weight, torch.zeros_like(raw_weight))
    per_token = -torch.minimum(surr1, surr2) * weight
    if c.kl_coef > 0:
        if reference is None:
            raise ValueError("kl_coef > 0 needs the reference policy's log-probs")
        r = reference - logp
        kl_ref = torch.exp(r) - r - 1.0
        per_token = per_token + c.kl_coef * kl_ref
    else:
        kl_ref = torch.zeros_like(logp)
    if c.entropy_coef > 0:
        per_token = per_token - c.entropy_coef * entropy
    loss = (per_token * mask).sum()
    with torch.no_grad():
        clipped = ((advantages > 0) & (ratio > hi)) | ((advantages < 0) & (ratio < lo))
        sums = torch.stack(
            [
                loss.detach(),
                (entropy * mask).sum(),
                (clipped.float() * mask).sum(),
                ((ratio - 1.0 - log_ratio) * mask).sum(),
                ((proximal - behaviour).abs() * mask).sum(),
                (kl_ref.detach() * mask).sum(),
            ]
        ).double()
    return loss, sums
