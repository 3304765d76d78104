"""questa's PyTorch FSDP2 learner (see functions/contracts/torch-learner-protocol.ts)."""
