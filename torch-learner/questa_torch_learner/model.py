"""The policy under FSDP2: built from a Hugging Face folder's config.json, sharded per decoder layer
and at the root, with AdamW over the sharded parameters; weights in from safetensors (rank 0 reads,
then broadcasts) or torch.distributed.checkpoint, out as a gathered safetensors folder or DCP. The
KL penalty's reference is a frozen model sharded the same way."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors import safe_open
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel
from transformers.initialization import no_init_weights

from questa_torch_learner.loss import target_log_probs
from questa_torch_learner.protocol import InputProblem

# tensors transformers ignores on load (buffers older checkpoints saved)
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)
INDEX_FILE = "model.safetensors.index.json"
SAFETENSORS_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class TrainingOptions:
    micro_batch_size: int
    activation_checkpointing: bool
    precision: str  # bf16 | fp32
    sharding: str  # full-shard | shard-grad-op | hybrid-shard

    @staticmethod
    def of(message: dict[str, Any]) -> TrainingOptions:
        return TrainingOptions(
            micro_batch_size=message["microBatchSize"],
            activation_checkpointing=message["activationCheckpointing"],
            precision=message["precision"],
            sharding=message["sharding"],
        )


def device_mesh(device_type: str, sharding: str, nodes: int, per_node: int) -> DeviceMesh:
    """1-D over every process, or for hybrid-shard 2-D: replicated across nodes, sharded within one."""
    if sharding == "hybrid-shard":
        return init_device_mesh(device_type, (nodes, per_node), mesh_dim_names=("replicate", "shard"))
    return init_device_mesh(device_type, (nodes * per_node,), mesh_dim_names=("shard",))


def sharded_model(
    folder: Path, options: TrainingOptions, mesh: DeviceMesh, device: torch.device, trainable: bool
) -> PreTrainedModel:
    """The model of the folder's config.json, sharded with FSDP2 per decoder layer and at the root;
    parameters allocated, not initialised (a checkpoint's weights overwrite them). A frozen model
    (the KL reference) has no gradients and no activation checkpointing."""
    config = AutoConfig.from_pretrained(folder)
    # buffers (the rotary frequencies) are computed as usual
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.tie_weights()
    model.to(device)
    if trainable:
        model.train()
        if options.activation_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.eval()
        model.requires_grad_(False)
    model.config.use_cache = False
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise InputProblem(
            f"{type(model).__name__} has no model.layers: not a decoder-only model questa trains"
        )
    mp = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if options.precision == "bf16"
        else MixedPrecisionPolicy()
    )
    # shard-grad-op keeps the gathered parameters from the forward for the backward; a frozen model
    # has no backward, so it always frees them
    reshard = options.sharding != "shard-grad-op" or not trainable
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard)
    return model


def load_huggingface_weights(model: PreTrainedModel, folder: Path, rank: int, tied: bool) -> None:
    """Weights from the folder's safetensors: rank 0 reads them and broadcasts each tensor, every
    rank keeps its shard. Collective."""
    state: dict[str, torch.Tensor] = {}
    if rank == 0:
        state = read_safetensors_folder(folder)
        expected = {name for name, _ in model.named_parameters()}
        have = {n for n in state if not n.endswith(IGNORED_SUFFIXES)}
        if tied:
            have.discard("lm_head.weight")
        missing, unexpected = sorted(expected - have), sorted(have - expected)
        if missing or unexpected:
            raise InputProblem(
                f"{folder}: weights do not match config.json "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        state = {n: t for n, t in state.items() if n in expected}
    set_model_state_dict(
        model,
        state,
        options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False),
    )


def ties_head(model: PreTrainedModel) -> bool:
    """the output head shares the input embeddings (saved once, as transformers does)"""
    return bool(getattr(model.config, "tie_word_embeddings", False))


class Policy:
    """The sharded model and its optimiser, the same on every rank."""

    def __init__(
        self, folder: Path, options: TrainingOptions, mesh: DeviceMesh, device: torch.device
    ) -> None:
        self.options = options
        self.device = device
        self.config_text = (folder / "config.json").read_text(encoding="utf-8")
        self.model: PreTrainedModel = sharded_model(folder, options, mesh, device, trainable=True)
        self.vocab_size = int(self.model.config.vocab_size)
        self.tied = ties_head(self.model)
        self.optimizer = self.new_optimizer()

    def new_optimizer(self) -> torch.optim.Optimizer:
        """AdamW with decay on matrices (embeddings, projections, head), not on norms and biases, as
        questa's ONNX learner (params.ts); the hyper-parameters are set for every step."""
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        rest = [p for p in self.model.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": 0.0}, {"params": rest, "weight_decay": 0.0}]
        # fused kernels on the GPU; on the CPU the per-tensor loop (fused and foreach are CUDA paths)
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(groups, lr=1e-5, fused=fused)

    def set_hyperparameters(
        self, lr: float, betas: tuple[float, float], eps: float, weight_decay: float
    ) -> None:
        for index, group in enumerate(self.optimizer.param_groups):
            group["lr"] = lr
            group["betas"] = betas
            group["eps"] = eps
            group["weight_decay"] = weight_decay if index == 0 else 0.0

    # ------------------------------------------------------------------ weights in

    def load_huggingface(self, folder: Path, rank: int) -> None:
        """Weights from the folder's safetensors (rank 0 reads, every rank keeps its shard); the
        optimiser starts fresh."""
        load_huggingface_weights(self.model, folder, rank, self.tied)
        self.optimizer = self.new_optimizer()

    def load_dcp(self, folder: Path) -> int:
        """Model and optimiser state as a DCP save wrote them (any world size); the optimiser's step."""
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, storage_reader=dcp.FileSystemReader(str(folder)))
        set_state_dict(
            self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
        )
        return self.optimizer_step()

    def optimizer_step(self) -> int:
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                step = self.optimizer.state.get(p, {}).get("step")
                if step is not None:
                    return int(step.item() if torch.is_tensor(step) else step)
        return 0

    # ------------------------------------------------------------------ weights out

    def save_huggingface(self, folder: Path, dtype: str, max_file_bytes: int, rank: int) -> list[str]:
        """The full weights gathered on rank 0 (on the CPU) and written as safetensors in the source
        dtype, sharded above max_file_bytes like save_pretrained (with its index); a tied head is
        left out, as transformers does. Collective: every rank calls it."""
        state = get_model_state_dict(
            self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        if rank != 0:
            return []
        if self.tied:
            state.pop("lm_head.weight", None)
        target = SAFETENSORS_DTYPES[dtype]
        tensors = {name: t.detach().to(target).contiguous() for name, t in sorted(state.items())}
        return write_safetensors_folder(folder, tensors, max_file_bytes)

    def save_dcp(self, folder: Path, max_file_bytes: int) -> None:
        """Model and optimiser state with torch.distributed.checkpoint: each rank writes its own
        shards (in files of at most about max_file_bytes), rank 0 the metadata. Collective."""
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        local = sum(local_bytes(v) for v in _tensors({"model": model_state, "optim": optim_state}))
        threads = max(1, math.ceil(local / max_file_bytes))
        dcp.save(
            {"model": model_state, "optim": optim_state},
            storage_writer=dcp.FileSystemWriter(str(folder), thread_count=threads, single_file_per_rank=True),
        )


class Reference:
    """The policy a KL penalty pulls towards (the run's step 0), frozen and sharded like the policy:
    no optimiser, no gradients. It scores the trained tokens of each micro-batch."""

    def __init__(
        self, folder: Path, options: TrainingOptions, mesh: DeviceMesh, device: torch.device
    ) -> None:
        self.config_text = (folder / "config.json").read_text(encoding="utf-8")
        self.model: PreTrainedModel = sharded_model(folder, options, mesh, device, trainable=False)
        self.tied = ties_head(self.model)

    def load_huggingface(self, folder: Path, rank: int) -> None:
        load_huggingface_weights(self.model, folder, rank, self.tied)

    @torch.no_grad()
    def log_probs(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids=input_ids, use_cache=False).logits
        return target_log_probs(logits, input_ids)


def _tensors(tree: object) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in _tensors(v)]
    if isinstance(tree, (list, tuple)):
        return [t for v in tree for t in _tensors(v)]
    return []


def local_bytes(t: torch.Tensor) -> int:
    local = t.to_local() if hasattr(t, "to_local") else t
    return local.numel() * local.element_size()


def read_safetensors_folder(folder: Path) -> dict[str, torch.Tensor]:
    index = folder / INDEX_FILE
    files = (
        sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    state: dict[str, torch.Tensor] = {}
    for name in files:
        path = folder / name
        if not path.exists():
            raise InputProblem(f"{path} is missing")
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key).to(torch.float32)
    return state


def write_safetensors_folder(
    folder: Path, tensors: dict[str, torch.Tensor], max_file_bytes: int
) -> list[str]:
    """Tensors in name order, packed into shards of at most max_file_bytes (a bigger tensor alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[list[str]] = [[]]
    size = 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        if size > 0 and size + n > max_file_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += n
    written: list[str] = []
    weight_map: dict[str, str] = {}
    for i, names in enumerate(shards):
        file = (
            "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        )
        save_file({n: tensors[n] for n in names}, str(folder / file), metadata={"format": "pt"})
        written.append(file)
        weight_map.update({n: file for n in names})
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        written.append(INDEX_FILE)
    return written


def barrier() -> None:
    dist.barrier()
