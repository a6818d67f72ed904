"""A mask in the forms serving engines read: plain per-layer lists, vLLM's ``approximate_experts``.

The mask JSON (docs/formats.md) is the lens's own format. Serving engines that
take per-layer expert lists want them in their own shape:

- ``plain``: one line per MoE layer, in the mask's layer order, the kept expert
  ids separated by spaces — for scripts and engines that take a list per layer;
- ``vllm``: the ``approximate_experts`` object of vLLM's expert substitution
  (MoNE): for each *decoder* layer number (as a string) the experts that are
  not kept. vLLM numbers decoder layers, and a mask numbers MoE layers, so the
  numbers come from the checkpoint's own tensor names (models with dense first
  layers or MoE every other layer differ). vLLM *substitutes* those experts
  with a constant output rather than making them unselectable; see the README.
"""

from __future__ import annotations

from core.errors import LensError
from core.formats.mask import Mask

SERVING_FORMATS = ("json", "plain", "vllm")


def plain_lists(mask: Mask) -> str:
    """One line per MoE layer: the kept expert ids, ascending, separated by spaces."""
    return "".join(" ".join(str(e) for e in sorted(ids)) + "\n" for ids in mask.layers)


def vllm_approximate_experts(mask: Mask, decoder_layers: list[int]) -> dict:
    """``{"approximate_experts": {"<decoder layer>": [dropped ids]}}`` for vLLM's config.json.

    ``decoder_layers[l]`` is the decoder layer number of the mask's MoE layer
    ``l`` (from the checkpoint); a mismatch in count is refused.
    """
    if len(decoder_layers) != mask.num_layers:
        raise LensError(
            f"the mask has {mask.num_layers} MoE layers but the model has {len(decoder_layers)}"
        )
    dropped = {
        str(layer): [e for e in range(mask.num_experts) if e not in set(ids)]
        for layer, ids in zip(decoder_layers, mask.layers)
    }
    return {"approximate_experts": dropped}
