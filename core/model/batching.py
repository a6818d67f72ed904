"""Plan batches of tokenized samples and pad them for a causal LM's backbone.

Shared by collection and evaluation: both batch longest first
(:func:`plan_batches`, deterministic, so a resumed run plans the same
batches), run the model's backbone (no LM
head, or their own), pad on the tokenizer's side, and pass position ids that
count real tokens only, so a left-padded sample sees 0, 1, 2, ... exactly as
it would alone.
"""

from __future__ import annotations

import inspect
from typing import Any


def plan_batches(indices: list[int], lengths: list[int], batch_size: int) -> list[list[int]]:
    """Longest first (ties by position), cut into batches: deterministic for resume.

    Longest first keeps padding waste low and makes an out-of-memory error
    show up at once, not hours in.
    """
    order = sorted(indices, key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def backbone_of(model: Any) -> Any | None:
    """The model's transformer without its LM head (``model.model`` for ``*ForCausalLM``)."""
    backbone = getattr(model, getattr(model, "base_model_prefix", ""), None)
    return backbone if callable(backbone) else None


class BatchPadder:
    """Turns token id sequences (lists or arrays) into padded inputs on the backbone's device."""

    def __init__(self, backbone: Any, tokenizer: Any) -> None:
        parameters = inspect.signature(backbone.forward).parameters
        self.pass_positions = "position_ids" in parameters
        self.device = backbone.get_input_embeddings().weight.device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.left = getattr(tokenizer, "padding_side", "right") == "left"

    def pad(self, sequences: list) -> tuple[dict[str, Any], Any, Any]:
        """``(inputs, ids, mask)``: backbone keyword arguments, and the CPU ids and mask."""
        import torch  # lazy: optional dependency (the collect extra)

        longest = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for row, seq in enumerate(sequences):
            span = slice(longest - len(seq), longest) if self.left else slice(0, len(seq))
            ids[row, span] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, span] = 1
        inputs: dict[str, Any] = {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "use_cache": False,
        }
        if self.pass_positions:
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
        return inputs, ids, mask
