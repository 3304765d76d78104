"""One torchrun process. Global rank 0 reads questa's requests and broadcasts each to every rank;
every rank does its part (a collective step); the local rank 0 of each node answers its own node's
questa process (the driver on rank 0's node, a node agent elsewhere)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh

from questa_torch_learner.batch import deal, micro_batches, read_batch
from questa_torch_learner.loss import SUMS, PpoCoefficients, ppo_sums, token_stats
from questa_torch_learner.model import Policy, Reference, TrainingOptions, device_mesh
from questa_torch_learner.protocol import Channel, InputProblem, Message, take_stdout


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="questa_torch_learner")
    parser.add_argument(
        "--workdir", required=True, type=Path, help="this node's folder for batches and checkpoints"
    )
    parser.add_argument("--schemas", required=True, type=Path, help="manifests/schemas of questa")
    parser.add_argument("--threads", required=True, type=int, help="intra-op threads of this process")
    return parser.parse_args(argv)


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.rank = int(os.environ["RANK"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.world = int(os.environ["WORLD_SIZE"])
        self.per_node = int(os.environ["LOCAL_WORLD_SIZE"])
        self.node = int(os.environ["GROUP_RANK"])
        self.nodes = self.world // self.per_node
        self.workdir: Path = args.workdir
        self.channel: Channel | None = None
        if self.local_rank == 0:
            self.channel = Channel(args.schemas, take_stdout(), sys.stdin)
        else:
            take_stdout().close()
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
            backend = "nccl"
        else:
            self.device = torch.device("cpu")
            backend = "gloo"
        # denormals are flushed on the CPU (tiny gradients otherwise take the slow path); one
        # intra-op pool per process, cores / processes threads each
        torch.set_flush_denormal(True)
        torch.set_num_threads(max(1, args.threads))
        dist.init_process_group(backend=backend, device_id=self.device if backend == "nccl" else None)
        self.backend = backend
        self.threads = max(1, args.threads)
        self.policy: Policy | None = None
        self.reference: Reference | None = None
        self.meshes: dict[str, DeviceMesh] = {}

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        if self.channel is not None:
            self.channel.send(
                {
                    "type": "ready",
                    "rank": self.rank,
                    "node": self.node,
                    "nodes": self.nodes,
                    "worldSize": self.world,
                    "device": str(self.device),
                    "backend": self.backend,
                    "threads": self.threads,
                }
            )
        while True:
            request = self.next_request()
            if request["type"] == "shutdown":
                self.reply({"type": "closing", "id": request["id"]})
                return 0
            try:
                self.reply(self.handle(request))
            except Exception as error:
                # after the broadcast the ranks are in a collective step together: one that breaks
                # leaves the others waiting, so the process group ends here (torchrun stops the rest)
                traceback.print_exc(file=sys.stderr)
                self.reply({"type": "failed", "id": request["id"], "kind": "internal", "message": str(error)})
                sys.stderr.flush()
                os._exit(1)

    def next_request(self) -> Message:
        """Rank 0 reads until a request passes its checks, then every rank gets it (a train request
        with its own share of the batch)."""
        payload: list[Any] = [None]
        shares: list[Any] = [None] * self.world
        if self.rank == 0:
            assert self.channel is not None
            while payload[0] is None:
                request = self.channel.read()
                if request is None:  # questa is gone: stop every rank
                    request = {"type": "shutdown", "id": 1}
                try:
                    if request["type"] == "train":
                        shares = self.prepare_train(request)
                    elif request["type"] in ("save",) and self.policy is None:
                        raise InputProblem("save before any load: the learner holds no model yet")
                    elif request["type"] == "load" and request["role"] == "reference":
                        if request["weights"] != "huggingface":
                            raise InputProblem("a reference loads Hugging Face weights (hf/), not dcp")
                    elif request["type"] == "fetched":
                        raise InputProblem("fetched is a node agent's answer, not a request")
                    payload[0] = request
                except InputProblem as problem:
                    self.reply(
                        {"type": "failed", "id": request["id"], "kind": "input", "message": str(problem)}
                    )
        dist.broadcast_object_list(payload, src=0)
        request = payload[0]
        if request["type"] == "train":
            mine: list[Any] = [None]
            dist.scatter_object_list(mine, shares if self.rank == 0 else None, src=0)
            request = {**request, "share": mine[0]}
        return request

    def prepare_train(self, request: Message) -> list[Any]:
        if self.policy is None:
            raise InputProblem("train before any load: the learner holds no model yet")
        if request["settings"]["klCoef"] > 0 and self.reference is None:
            raise InputProblem("klCoef > 0 before a load with role reference: the learner holds no reference")
        lengths: list[int] = request["lengths"]
        samples = read_batch(self.workdir / request["batch"], lengths, self.policy.vocab_size)
        tokens = sum(float(s.loss_mask[1:].sum()) for s in samples)
        per_rank = deal(lengths, self.world)
        count = max(1, *(-(-len(s) // self.policy.options.micro_batch_size) for s in per_rank))
        return [
            {"samples": [samples[i] for i in idx], "tokens": tokens, "microBatches": count}
            for idx in per_rank
        ]

    def reply(self, message: Message | None) -> None:
        if message is not None and self.rank == 0 and self.channel is not None:
            self.channel.send(message)

    def handle(self, request: Message) -> Message | None:
        kind = request["type"]
        if kind == "load":
            return self.load(request)
        if kind == "train":
            return self.train(request)
        if kind == "save":
            return self.save(request)
        raise ValueError(f"unknown request {kind}")

    # ------------------------------------------------------------------ requests

    def node_fetch(self, request: Message) -> None:
        """On the nodes other than rank 0's, local rank 0 asks its node agent for the files."""
        if self.local_rank == 0 and self.rank != 0:
            assert self.channel is not None
            folder = self.workdir / request["folder"]
            shutil.rmtree(folder, ignore_errors=True)
            self.channel.send(
                {
                    "type": "fetch",
                    "id": request["id"],
                    "prefix": request["prefix"],
                    "folder": request["folder"],
                    "files": request["files"],
                }
            )
            answer = self.channel.read()
            if answer is None or answer["type"] != "fetched" or answer["id"] != request["id"]:
                raise RuntimeError(f"node {self.node}: no fetched answer for request {request['id']}")
            if "error" in answer:
                raise RuntimeError(
                    f"node {self.node}: fetching {request['prefix']} failed: {answer['error']}"
                )
        dist.barrier()

    def load(self, request: Message) -> Message:
        self.node_fetch(request)
        folder = self.workdir / request["folder"]
        model_folder = folder / "hf"
        config_text = (model_folder / "config.json").read_text(encoding="utf-8")
        first = self.policy or self.reference
        if first is not None and config_text != first.config_text:
            raise RuntimeError(f"{request['prefix']}: config.json differs from the model loaded first")
        options = TrainingOptions.of(request["options"])
        step = 0
        if request["role"] == "reference":
            if self.reference is None:
                self.reference = Reference(model_folder, options, self.mesh(options), self.device)
            self.reference.load_huggingface(model_folder, self.rank)
        else:
            if self.policy is None:
                self.policy = Policy(model_folder, options, self.mesh(options), self.device)
            if request["weights"] == "dcp":
                step = self.policy.load_dcp(folder / "dcp")
            else:
                self.policy.load_huggingface(model_folder, self.rank)
        dist.barrier()
        if self.local_rank == 0:
            shutil.rmtree(folder, ignore_errors=True)
        return {"type": "loaded", "id": request["id"], "optimizerStep": step}

    def mesh(self, options: TrainingOptions) -> DeviceMesh:
        """the processes a model is sharded over: one mesh (and its process groups, NCCL
        communicators on GPUs) shared by the policy and the reference"""
        if options.sharding not in self.meshes:
            self.meshes[options.sharding] = device_mesh(
                self.device.type, options.sharding, self.nodes, self.per_node
            )
        return self.meshes[options.sharding]

    def train(self, request: Message) -> Message:
        policy = self.policy
        assert policy is not None
        s = request["settings"]
        share = request["share"]
        coefficients = PpoCoefficients(
            s["clipLow"], s["clipHigh"], s["importanceCap"], s["entropyCoef"], s["klCoef"]
        )
        reference = self.reference if coefficients.kl_coef > 0 else None
        policy.set_hyperparameters(s["learningRate"], (s["beta1"], s["beta2"]), s["eps"], s["weightDecay"])
        chunks = micro_batches(
            share["samples"], policy.options.micro_batch_size, share["microBatches"], self.device
        )
        tokens: float = share["tokens"]
        # FSDP averages gradients over the ranks; the loss is a sum over the whole batch's tokens
        # divided by their count, so each rank's part is scaled back up by the world size
        scale = self.world / tokens
        sums = torch.zeros(len(SUMS), dtype=torch.float64, device=self.device)
        model = policy.model
        for i, mb in enumerate(chunks):
            last = i == len(chunks) - 1
            model.set_requires_gradient_sync(last)
            logits = model(input_ids=mb.input_ids, use_cache=False).logits
            logp, entropy = token_stats(logits, mb.input_ids, coefficients.entropy_coef > 0)
            reference_logp = reference.log_probs(mb.input_ids) if reference is not None else None
            loss, chunk_sums = ppo_sums(
                logp, entropy, mb.advantages, mb.behaviour, mb.mask, coefficients, reference_logp
            )
            (loss * scale).backward()
            sums += chunk_sums.to(self.device)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=s["gradClip"])
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        policy.optimizer.step()
        policy.optimizer.zero_grad(set_to_none=True)
        dist.all_reduce(sums)
        per_token = {name: float(v) / tokens for name, v in zip(SUMS, sums.tolist(), strict=True)}
        return {
            "type": "trained",
            "id": request["id"],
            "metrics": {
                "loss": per_token["loss"],
                "entropy": per_token["entropy"],
                "clipFraction": per_token["clipped"],
                "approxKl": per_token["approx_kl"],
                "gradNorm": float(grad_norm),
                "tokens": round(tokens),
                "logProbGap": per_token["log_prob_gap"],
                **({"klToReference": per_token["kl_ref"]} if reference is not None else {}),
            },
        }

    def save(self, request: Message) -> Message:
        policy = self.policy
        assert policy is not None
        folder = self.workdir / request["folder"]
        if self.local_rank == 0:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        dist.barrier()
        if request["huggingFace"] is not None:
            policy.save_huggingface(
                folder / "hf", request["huggingFace"]["dtype"], request["maxFileBytes"], self.rank
            )
        if request["dcp"]:
            policy.save_dcp(folder / "dcp", request["maxFileBytes"])
        dist.barrier()
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        if self.local_rank == 0 and self.rank != 0 and request["dcp"]:
            assert self.channel is not None
            self.channel.send(
                {
                    "type": "store",
                    "id": request["id"],
                    "prefix": request["prefix"],
                    "folder": request["folder"],
                    "node": self.node,
                    "files": files,
                }
            )
        return {"type": "saved", "id": request["id"], "files": files}


def main(argv: list[str]) -> int:
    worker = Worker(parse_args(argv))
    try:
        return worker.run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
