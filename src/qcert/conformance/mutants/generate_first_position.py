"""Greedy decoding takes the argmax at the wrong position (the first token's logits, not the last)."""

import torch

from qcert.conformance.mutants import Mutant


@torch.no_grad()
def generate_from_first(self, input_ids, max_new_tokens):
    ids = input_ids
    for _ in range(max_new_tokens):
        nxt = self.forward(ids)[:, 0].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    return ids


MUTANT = Mutant(
    id="generate/first-position",
    description="generate reads the logits of position 0",
    upstream="qcert (engine)",
    kills=["numerics/generate-greedy"],
    patches=[("qcert.engine.loader", "LoadedModel.generate", generate_from_first)],
)
