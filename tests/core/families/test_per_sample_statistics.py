"""Per-sample statistics of every family that builds from a tiny config, against a hand reference.

For each model type with an adapter, a tiny random model of the real class
(``tests/tiny_models.py``, the census's builder) collects three samples of
different lengths in one right-padded batch, the way ``lens collect`` does
(:class:`~core.model.batching.BatchPadder` and
:class:`~core.collect.capture.RouterCapture` on the backbone). The reference
runs each sample alone, unpadded, with a plain forward pre-hook on every MoE
block that keeps the hidden states entering it, and computes from those and
the router's weights, by hand:

- ``prob_sum``: the softmax of the router logits ``h Wᵀ (+ b)`` summed over
  the sample's tokens (Gemma-4's router normalises and scales its input first;
  Laguna soft-caps its logits; Inkling's matrix also scores its shared experts,
  which are not routed);
- ``topk_count``: how often each expert is in the family's *real* top-k choice,
  written out per token in a plain loop (:data:`CHOICE`: top-k of the logits;
  of sigmoid + correction bias; of logits + bias; of softmax + bias; or
  DeepSeek-style groups first);
- ``token_count``: the sample's length.

The whole matrix takes a few minutes on 2 cores, so CI runs one type per
routing kind (:data:`REPRESENTATIVE`); the whole matrix:
``LENS_FAMILY_MATRIX=full python -m pytest tests/core/families/test_per_sample_statistics.py``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from core.collect.capture import RouterCapture  # noqa: E402
from core.families import ADAPTERS  # noqa: E402
from core.families.layers import find_moe_layers  # noqa: E402
from core.model.batching import BatchPadder, backbone_of  # noqa: E402
from tests.tiny_models import build_tiny_model_of_type  # noqa: E402

#: Three samples of different lengths (tiny vocabularies have 128 ids), so the batch is padded.
SAMPLES = [[5, 17, 99, 3, 120, 41, 7], [101, 8, 8, 90], [14, 30, 6, 77, 50, 21, 3, 44, 12, 64]]

#: How each family chooses its top-k, by adapter name: the reference's own statement.
CHOICE: dict[str, str] = {
    **dict.fromkeys(
        (
            "gpt_oss", "mixtral", "qwen2_moe", "qwen3_moe", "qwen3_next", "qwen3_5_moe", "olmoe",
            "deepseek_v2", "granitemoe", "granitemoeshared", "granitemoe_swa", "phimoe", "jamba",
            "minimax", "hunyuan_v1_moe", "flex_olmo", "mellum", "lara_mini", "cohere2_moe",
            "llama4", "gemma4", "aria", "qwen4_exp",
        ),
        "logits",
    ),  # top-k of the logits (= of their softmax; PhiMoE's sparsemixer: best, then best of rest)
    **dict.fromkeys(
        ("minimax_m2", "hy_v3", "afmoe", "laguna", "lfm2_moe", "minimax_m3_vl", "inkling",
         "inkling2"),
        "sigmoid_bias",
    ),  # top-k of sigmoid(logits) + correction bias (none: plain sigmoid)
    "kolibri1": "logits_bias",  # top-k of logits + correction bias
    **dict.fromkeys(("ernie4_5_moe", "longcat_flash"), "softmax_bias"),
    **dict.fromkeys(
        (
            "deepseek_v3", "deepseek_v32", "glm4_moe", "glm_moe_dsa", "dots1", "kimi_linear",
            "exaone_moe", "mimo_v2_flash", "solar_open", "axk1", "axk2", "beam", "nemotron_h",
            "bailing_hybrid", "hy_v4",
        ),
        "grouped_sigmoid_bias",
    ),  # best topk_group of n_group groups (sum of each group's best two), then top-k
}  # fmt: skip

#: Families whose routers this table cannot state (DBRX's p-norm, hash-routed DeepSeek-V4,
#: Doge's product keys, JetMoE's two MoE layers per decoder layer, Zaya's skip expert, …):
#: each has its own hand-written reference in ``tests/core/families/test_<name>.py``.
OWN_REFERENCE = (
    "dbrx", "deepseek_v4", "doge", "dots3_note_text", "granitemoehybrid", "jetmoe", "zaya",
)  # fmt: skip

#: One model type per routing kind and router layout, run in CI.
REPRESENTATIVE = (
    "gpt_oss",  # router bias
    "phimoe",  # sparsemixer
    "gemma4_text",  # router inside the decoder layer, returns probabilities
    "aria_text",  # logits top-k, shared experts
    "inkling_text",  # E + S router rows, 4-tuple router
    "minimax_m3_vl_text",  # sigmoid + router bias
    "ernie4_5_moe",  # softmax + [1, E] bias
    "kolibri1",  # logits + bias
    "glm4_moe",  # grouped sigmoid + bias
    "beam",  # grouped, scale on the block output
    "qwen4_exp",  # a multimodal wrapper's text model, hyper-connection streams around the block
)
#: Names a correction bias goes by, in the router or the block.
BIAS_NAMES = ("e_score_correction_bias", "expert_bias")

FULL = os.environ.get("LENS_FAMILY_MATRIX") == "full"
TYPES = sorted(
    t for adapter in ADAPTERS if adapter.name not in OWN_REFERENCE for t in adapter.model_types
)


def _params(types: list[str]) -> list:
    return [
        pytest.param(
            t,
            marks=()
            if FULL or t in REPRESENTATIVE
            else pytest.mark.skip(reason="full matrix: LENS_FAMILY_MATRIX=full"),
        )
        for t in types
    ]


def _router_weight_and_bias(router, experts: int) -> tuple:
    """The router's one ``[E(+S), H]`` weight and, if it has one, its ``bias``, found by shape
    and name (ERNIE's ``[1, E]`` correction bias is a 2-D parameter too)."""
    matrices = [
        (n, p) for n, p in router.named_parameters() if p.ndim == 2 and p.shape[0] >= experts
    ]
    assert len(matrices) == 1, [n for n, _ in matrices]
    name, weight = matrices[0]
    owner = name.rsplit(".", 1)[0] + "." if "." in name else ""
    bias = dict(router.named_parameters()).get(owner + "bias")
    return weight, bias


def _correction_bias(block, experts: int):
    """A selection bias of E values anywhere in the block (router, ``moe_statics``, block)."""
    for name, tensor in [*block.named_parameters(), *block.named_buffers()]:
        if name.rsplit(".", 1)[-1] in BIAS_NAMES and tensor.numel() == experts:
            return tensor.detach().reshape(-1).float()
    return None


def _logits(layer, family: str, hidden) -> torch.Tensor:
    """Dense ``[T, E]`` router logits from the hidden states by hand."""
    router = layer.router
    weight, bias = _router_weight_and_bias(router, layer.num_experts)
    h = hidden.float()
    if family == "gemma4":  # RMS-normalised (no weight), times its scale and 1/√H
        h = h * torch.pow(h.pow(2).mean(-1, keepdim=True) + router.eps, -0.5)
        h = h * router.scale.float() * hidden.shape[-1] ** -0.5
    logits = h @ weight.float().T
    if bias is not None:
        logits = logits + bias.float()
    cap = getattr(router, "router_logit_softcapping", 0.0) or 0.0
    if cap > 0:  # Laguna
        logits = torch.tanh(logits / cap) * cap
    return logits[:, : layer.num_experts]  # Inkling's trailing rows score its shared experts


def _groups(layer, model) -> tuple[int | None, int | None]:
    config = model.config.get_text_config()
    n_group = getattr(layer.router, "num_group", getattr(config, "n_group", None))
    topk_group = getattr(layer.router, "topk_group", getattr(config, "topk_group", None))
    return n_group, topk_group


def _choose(kind: str, family: str, logits, bias, k: int, groups: tuple) -> list[list[int]]:
    """Each token's chosen experts, one token at a time in plain Python."""
    chosen = []
    for row in logits.tolist():
        experts = len(row)
        b = bias.tolist() if bias is not None else [0.0] * experts
        sigmoid = [1 / (1 + math.exp(-x)) for x in row]
        top = max(row)
        exp = [math.exp(x - top) for x in row]
        softmax = [x / sum(exp) for x in exp]
        if kind == "logits":
            score = row
        elif kind == "sigmoid_bias":
            score = [s + c for s, c in zip(sigmoid, b)]
        elif kind == "logits_bias":
            score = [x + c for x, c in zip(row, b)]
        elif kind == "softmax_bias":
            score = [p + c for p, c in zip(softmax, b)]
        elif kind == "grouped_sigmoid_bias":
            score = [s + c for s, c in zip(sigmoid, b)]
            n_group, topk_group = groups
            if n_group is not None:
                size = experts // n_group
                group_score = [
                    sum(sorted(score[g * size : (g + 1) * size], reverse=True)[:2])
                    for g in range(n_group)
                ]
                best = sorted(range(n_group), key=lambda g: -group_score[g])[:topk_group]
                fill = 0.0 if family == "axk2" else -math.inf  # A.X K2's reference code fills 0.0
                score = [s if e // size in best else fill for e, s in enumerate(score)]
        else:
            raise AssertionError(kind)
        chosen.append(sorted(range(experts), key=lambda e: -score[e])[:k])
    return chosen


@torch.no_grad()
def _reference(model, layers, family: str) -> dict[str, np.ndarray]:
    shape = (len(SAMPLES), len(layers), layers[0].num_experts)
    out = {"prob_sum": np.zeros(shape), "topk_count": np.zeros(shape)}
    kind = CHOICE[family]
    for i, ids in enumerate(SAMPLES):
        hidden: dict[int, torch.Tensor] = {}
        handles = []
        for layer in layers:
            # Gemma-4's MoE is part of the decoder layer: its router's input is the block's.
            target = layer.router if family == "gemma4" else layer.block

            def keep(module, args, kwargs, index=layer.index, hidden=hidden):
                h = args[0] if args else kwargs["hidden_states"]
                hidden[index] = h.detach().reshape(-1, h.shape[-1])

            handles.append(target.register_forward_pre_hook(keep, with_kwargs=True))
        try:
            model(torch.tensor([ids]))
        finally:
            for handle in handles:
                handle.remove()
        for layer in layers:
            logits = _logits(layer, family, hidden[layer.index])
            out["prob_sum"][i, layer.index] = torch.softmax(logits, dim=-1).sum(0).numpy()
            bias = _correction_bias(layer.block, layer.num_experts)
            if family == "lfm2_moe" and not layer.router.use_expert_bias:
                bias = None
            picks = _choose(kind, family, logits, bias, layer.top_k, _groups(layer, model))
            for experts in picks:
                for e in experts:
                    out["topk_count"][i, layer.index, e] += 1
    return out


@torch.no_grad()
def _collected(model, layers) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The lens's per-sample sums and token counts for :data:`SAMPLES` in one padded batch."""
    backbone = backbone_of(model) or model
    padder = BatchPadder(backbone, SimpleNamespace(pad_token_id=0, padding_side="right"))
    inputs, _, mask = padder.pad(SAMPLES)
    with RouterCapture(layers, energy=False) as capture:
        capture.begin_batch(inputs["attention_mask"])
        backbone(**inputs)
        sums = capture.end_batch()
    return sums, mask.sum(dim=1).numpy()


def test_every_family_has_a_reference_choice():
    """A new adapter must state its routing here, or the matrix below cannot check it, or
    have a hand reference of its own."""
    assert sorted({a.name for a in ADAPTERS} - set(CHOICE) - set(OWN_REFERENCE)) == []
    here = Path(__file__).parent
    assert [n for n in OWN_REFERENCE if not (here / f"test_{n}.py").exists()] == []


@pytest.mark.parametrize("model_type", _params(TYPES))
def test_per_sample_statistics_match_the_hand_reference(model_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_tiny_model_of_type(model_type)
    layers = find_moe_layers(model)
    torch.manual_seed(1)
    for layer in layers:  # AFMoE initialises its router to zeros: every token would tie
        weight = _router_weight_and_bias(layer.router, layer.num_experts)[0]
        if not weight.detach().abs().max() > 0:
            weight.data.normal_(0.0, 0.5)
    sums, token_count = _collected(model, layers)
    expected = _reference(model, layers, layers[0].family.name)
    np.testing.assert_array_equal(token_count, [len(s) for s in SAMPLES])
    np.testing.assert_allclose(sums["prob_sum"], expected["prob_sum"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(sums["topk_count"], expected["topk_count"])
