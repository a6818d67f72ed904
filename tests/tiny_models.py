"""Tiny random-initialised MoE checkpoints of the real transformers classes, for tests.

Each builder makes a config of the real architecture with a handful of
parameters, saves it with ``save_pretrained`` beside a byte-level BPE
tokenizer trained locally with ``tokenizers`` (no hub), so tests load the model
by path exactly as a user would. Import torch/transformers lazily: this module
is only used by tests that need them.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

# Small, varied English/other text so the tokenizer has merges and samples differ.
TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Mixture-of-experts models route every token to a few experts.",
    "Calibration data decides which experts survive pruning.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "def add(a, b):\n    return a + b\n",
    "for i in range(10): print(i * i)",
    "Router probabilities are summed per sample and per layer.",
    "快速的棕色狐狸跳过了懒狗。",
    "Numbers like 3.14159 and 2.71828 appear in text too.",
]

#: Common tiny sizes: 2 layers, 8 experts, top-2, hidden 32.
HIDDEN = 32
LAYERS = 2
EXPERTS = 8
TOP_K = 2
VOCAB = 320


def build_tokenizer(folder: str | Path, vocab_size: int = VOCAB):
    """Train a byte-level BPE on :data:`TRAINING_TEXT` and save it as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|eos|>"
    )
    fast.save_pretrained(str(folder))
    return fast


def _config(family: str, vocab_size: int):
    from transformers import AutoConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    if family == "gpt_oss":
        return AutoConfig.for_model(
            "gpt_oss",
            # YaRN factor 32 over an original 4096 positions, as the real model: no warning.
            **{**common, "max_position_embeddings": 4096 * 32},
            head_dim=8,
            intermediate_size=16,
            num_local_experts=EXPERTS,
            num_experts_per_tok=TOP_K,
            sliding_window=16,
            layer_types=["sliding_attention", "full_attention"],
        )
    if family == "mixtral":
        return AutoConfig.for_model(
            "mixtral",
            **common,
            intermediate_size=16,
            num_local_experts=EXPERTS,
            num_experts_per_tok=TOP_K,
        )
    if family == "qwen2_moe":
        return AutoConfig.for_model(
            "qwen2_moe",
            **common,
            intermediate_size=32,
            moe_intermediate_size=16,
            shared_expert_intermediate_size=16,
            num_experts=EXPERTS,
            num_experts_per_tok=TOP_K,
            decoder_sparse_step=1,
            norm_topk_prob=False,
        )
    if family == "qwen3_moe":
        return AutoConfig.for_model(
            "qwen3_moe",
            **common,
            head_dim=8,
            intermediate_size=32,
            moe_intermediate_size=16,
            num_experts=EXPERTS,
            num_experts_per_tok=TOP_K,
            decoder_sparse_step=1,
            norm_topk_prob=True,
        )
    if family == "olmoe":
        return AutoConfig.for_model(
            "olmoe", **common, intermediate_size=16, num_experts=EXPERTS, num_experts_per_tok=TOP_K
        )
    if family == "deepseek_v3":
        return AutoConfig.for_model(
            "deepseek_v3",
            **{**common, "num_key_value_heads": 4},  # MLA has no grouped KV heads
            intermediate_size=32,
            moe_intermediate_size=16,
            n_routed_experts=EXPERTS,
            n_shared_experts=1,
            num_experts_per_tok=TOP_K,
            n_group=2,
            topk_group=1,
            first_k_dense_replace=0,
            q_lora_rank=16,
            kv_lora_rank=16,
            qk_rope_head_dim=4,
            qk_nope_head_dim=4,
            v_head_dim=8,
            routed_scaling_factor=2.5,
        )
    moe = dict(intermediate_size=16, num_experts_per_tok=TOP_K)
    if family in ("granitemoe", "phimoe"):
        return AutoConfig.for_model(family, **common, **moe, num_local_experts=EXPERTS)
    if family == "minimax":
        return AutoConfig.for_model(
            "minimax",
            **common,
            **moe,
            num_local_experts=EXPERTS,
            head_dim=8,
            layer_types=["full_attention"] * LAYERS,
        )
    if family == "jamba":  # Mamba + attention hybrid; every layer attention + MoE here
        return AutoConfig.for_model(
            "jamba",
            **common,
            **moe,
            num_experts=EXPERTS,
            attn_layer_period=1,
            attn_layer_offset=0,
            expert_layer_period=1,
            expert_layer_offset=0,
            use_mamba_kernels=False,
        )
    if family == "llama4":  # the text model: router returns (scores, logits), top-1
        return AutoConfig.for_model(
            "llama4_text",
            **common,
            intermediate_size=16,
            intermediate_size_mlp=32,
            num_local_experts=EXPERTS,
            num_experts_per_tok=1,
            head_dim=8,
            interleave_moe_layer_step=1,
            no_rope_layers=[1] * LAYERS,
        )
    if family == "qwen3_next":  # linear-attention + full-attention hybrid with a shared expert
        return AutoConfig.for_model(
            "qwen3_next",
            **common,
            head_dim=8,
            intermediate_size=32,
            moe_intermediate_size=16,
            shared_expert_intermediate_size=16,
            num_experts=EXPERTS,
            num_experts_per_tok=TOP_K,
            linear_num_value_heads=2,
            linear_num_key_heads=2,
            linear_key_head_dim=8,
            linear_value_head_dim=8,
            layer_types=["linear_attention", "full_attention"],
        )
    if family == "deepseek_v2":
        return AutoConfig.for_model(
            "deepseek_v2",
            **{**common, "num_key_value_heads": 4},
            intermediate_size=32,
            moe_intermediate_size=16,
            n_routed_experts=EXPERTS,
            n_shared_experts=1,
            num_experts_per_tok=TOP_K,
            first_k_dense_replace=0,
            q_lora_rank=None,
            kv_lora_rank=16,
            qk_rope_head_dim=4,
            qk_nope_head_dim=4,
            v_head_dim=8,
            n_group=1,
            topk_group=1,
            topk_method="greedy",
        )
    config = tiny_config_for_type(family)  # the families added since: shrunk defaults
    config.vocab_size = vocab_size
    return config


FAMILIES = ("gpt_oss", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3")
#: Further families collection supports; not every tool (pruning) handles them.
EXTRA_FAMILIES = ("granitemoe", "phimoe", "jamba", "minimax", "llama4", "deepseek_v2")


def build_tiny_model(
    family: str,
    folder: str | Path,
    seed: int = 0,
    dtype: str = "float32",
    overrides: dict | None = None,
) -> Path:
    """Save a tiny random ``family`` model and its tokenizer to ``folder``; return the folder.

    Router weights are scaled up so routing is peaked rather than near-uniform,
    which makes top-k choices (and therefore tests) sensitive to mistakes.
    ``overrides`` sets config fields (e.g. a benchmark's 4 layers × 32 experts).
    """
    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    config = _config(family, vocab_size=len(tokenizer))
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("router.weight", "mlp.gate.weight")):
                param.mul_(8.0)
            if name.endswith("e_score_correction_bias"):
                param.copy_(torch.randn_like(param) * 0.1)
    model.eval()
    model.save_pretrained(str(folder))
    return folder


#: The 16 FP4 (e2m1) values, indexed by nibble, as the MXFP4 format defines them.
FP4_VALUES = (
    0.0,
    0.5,
    1.0,
    1.5,
    2.0,
    3.0,
    4.0,
    6.0,
    -0.0,
    -0.5,
    -1.0,
    -1.5,
    -2.0,
    -3.0,
    -4.0,
    -6.0,
)


def dequantize_mxfp4(blocks, scales):
    """[E, rows, G, 16] uint8 nibble pairs + [E, rows, G] exponents (bias 127) -> [E, G*32, rows].

    Written from the format's definition (low nibble first, value × 2^(scale − 127)),
    as GPT-OSS stores ``gate_up_proj`` / ``down_proj``.
    """
    import torch

    lut = torch.tensor(FP4_VALUES)
    low, high = lut[(blocks & 0x0F).long()], lut[(blocks >> 4).long()]
    values = torch.stack([low, high], dim=-1).flatten(-2)  # [E, rows, G, 32]
    values = values * torch.pow(2.0, scales.to(torch.int32) - 127.0)[..., None]
    return values.flatten(-2).transpose(1, 2).contiguous()


def build_tiny_mxfp4_gpt_oss(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny GPT-OSS saved as an MXFP4 checkpoint, and the same weights in float32.

    Returns ``(mxfp4_folder, float_folder)``. Expert weights are random FP4 blocks
    and scales; the float twin holds their exact dequantisation, so a model that
    loads the MXFP4 checkpoint dequantised must behave exactly like the twin.
    """
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    mxfp4, float_twin = folder / "mxfp4", folder / "float"
    tokenizer = build_tokenizer(float_twin)
    tokenizer.save_pretrained(str(mxfp4))
    hidden, intermediate = 64, 32  # MXFP4 groups 32 values: both must be multiples of 32
    config = AutoConfig.for_model(
        "gpt_oss",
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=intermediate,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    quantised = {}
    shapes = {"gate_up_proj": (2 * intermediate, hidden), "down_proj": (hidden, intermediate)}
    for key, value in state.items():
        leaf = key.rsplit(".", 1)[-1]
        if ".experts." in key and leaf in shapes:
            rows, columns = shapes[leaf]
            blocks = torch.randint(
                0, 256, (EXPERTS, rows, columns // 32, 16), generator=generator, dtype=torch.uint8
            )
            scales = torch.randint(
                121, 126, (EXPERTS, rows, columns // 32), generator=generator, dtype=torch.uint8
            )
            quantised[key + "_blocks"], quantised[key + "_scales"] = blocks, scales
            state[key] = dequantize_mxfp4(blocks, scales)
        else:
            quantised[key] = value.contiguous()
    model.load_state_dict(state)
    model.save_pretrained(str(float_twin))
    save_file(quantised, str(mxfp4 / "model.safetensors"), metadata={"format": "pt"})
    config_doc = json.loads((float_twin / "config.json").read_text())
    config_doc["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    }
    (mxfp4 / "config.json").write_text(json.dumps(config_doc, indent=2))
    return mxfp4, float_twin


# --------------------------------------------------------------------------- any MoE type

#: Integer config attributes shrunk to tiny sizes wherever a config has them.
TINY_SIZES = {
    "hidden_size": HIDDEN,
    "intermediate_size": 32,
    "intermediate_size_mlp": 32,
    "moe_intermediate_size": 16,
    "expert_intermediate_size": 16,
    "shared_expert_intermediate_size": 16,
    "ffn_hidden_size": 32,
    "moe_ffn_hidden_size": 16,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "vocab_size": 128,
    "unpadded_vocab_size": 128,  # Inkling-2: the unembedding rows actually used
    "num_local_experts": EXPERTS,
    "num_experts": EXPERTS,
    "n_routed_experts": EXPERTS,
    "moe_num_experts": EXPERTS,
    "num_experts_per_tok": TOP_K,
    "moe_k": TOP_K,
    "moe_topk": TOP_K,
    "n_group": 2,
    "topk_group": 1,
    "num_expert_group": 2,
    "first_k_dense_replace": 0,
    "decoder_sparse_step": 1,
    "moe_layer_start_index": 0,
    "q_lora_rank": 16,
    "kv_lora_rank": 16,
    "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 4,
    "v_head_dim": 8,
    "linear_num_value_heads": 2,
    "linear_num_key_heads": 2,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 8,
    "sliding_window": 16,
    "index_head_dim": 8,
    "index_n_heads": 2,
    "max_window_layers": LAYERS,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

#: Per-type attributes on top of :data:`TINY_SIZES`, where the generic shrink is not enough.
TINY_OVERRIDES: dict[str, dict] = {
    "deepseek_v2": {"num_key_value_heads": 4, "topk_method": "greedy", "n_group": 1},
    "deepseek_v3": {"num_key_value_heads": 4},
    "zaya": {"num_experts_per_tok": 1},  # ZAYA's config validates top-1 only
    "doge": {"is_moe": True, "num_experts": 16},  # product keys: E = 4², every expert reachable
    "dots1": {"n_shared_experts": 1},
    "laguna": {"num_attention_heads_per_layer": [4] * LAYERS},
    "longcat_flash": {"n_routed_experts": EXPERTS - 2, "zero_expert_num": 2},  # E counts both
    "lfm2_moe": {"num_dense_layers": 0, "layer_types": ["conv", "full_attention"]},
    # per_layer_config: {} replaces the default overrides of layers 5, 11, … (absent in a
    # two-layer model), which a saved config would otherwise fail to load with. The
    # multimodal "gemma4" gets these on its text_config (its own top level has no MoE keys).
    "gemma4_text": {
        "enable_moe_block": True,
        "num_experts": EXPERTS,
        "top_k_experts": TOP_K,
        "per_layer_config": {},
    },
    "inkling_text": {"logits_mup_width_multiplier": 1.0},  # logits big enough to see a mask
    "jamba": {
        "attn_layer_period": 1,
        "attn_layer_offset": 0,
        "expert_layer_period": 1,
        "expert_layer_offset": 0,
        "use_mamba_kernels": False,
    },
    "llama4_text": {"interleave_moe_layer_step": 1, "no_rope_layers": [1] * LAYERS},
    # Mamba layers need an attention layer beside them (the cache reads its length there).
    "granitemoehybrid": {
        "layer_types": ["linear_attention", "full_attention"],
        "mamba_n_heads": 8,
        "mamba_d_head": 8,
        "mamba_d_state": 16,
        "mamba_chunk_size": 16,
        "shared_intermediate_size": 32,
    },
    # One hash-routed layer (experts from the token-id table) and one learned-router layer;
    # the MLA rule above would leave no rotary dimensions (head_dim × partial factor).
    "deepseek_v4": {
        "head_dim": 16,
        "qk_rope_head_dim": 4,
        "partial_rotary_factor": 0.25,
        "num_key_value_heads": 1,
        "mlp_layer_types": ["hash_moe", "moe"],
        "o_groups": 2,
        "o_lora_rank": 16,
        "index_topk": 4,
        "num_nextn_predict_layers": 0,
    },
}

#: Per-type keyword arguments given to the config class itself, for configs whose sizes are
#: fixed when it is built (nested DBRX sub-configs, dots3's per-layer configs, Qwen4-Exp's
#: indexer, which its config validates as a whole), so shrinking the attributes afterwards
#: would not reach them.
TINY_CONFIG_KWARGS: dict[str, dict] = {
    "dbrx": {
        "d_model": HIDDEN,
        "n_heads": 4,
        "n_layers": LAYERS,
        "max_seq_len": 256,
        "vocab_size": 128,
        "attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 8.0},  # as DBRX ships
        "ffn_config": {"ffn_hidden_size": 16, "moe_num_experts": EXPERTS, "moe_top_k": TOP_K},
    },
    "dots3_note_text": {
        "vocab_size": 128,
        "hidden_size": HIDDEN,
        "intermediate_size": 32,
        "moe_intermediate_size": 16,
        "shared_experts_intermediate_size": 16,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "n_routed_experts": EXPERTS,
        "num_experts_per_tok": TOP_K,
        "n_group": 2,
        "topk_group": 1,
        "first_k_dense_replace": 0,
        "kv_lora_rank": 16,
        "q_lora_rank": 16,
        "qk_rope_head_dim": 4,
        "qk_nope_head_dim": 4,
        "v_head_dim": 8,
        "index_topk": 4,
        "index_head_dim": 8,
        "index_n_heads": 2,
        "sliding_window": 16,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },
    # Gated-DeltaNet + indexed (QSA) attention with hyper-connection streams: the indexer has
    # no defaults (the model always builds one) and the streams' low rank is 320 by default.
    "qwen4_exp_text": {
        "vocab_size": 128,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 2,
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 8,
        "moe_intermediate_size": 16,
        "shared_expert_intermediate_size": 16,
        "num_experts": EXPERTS,
        "num_experts_per_tok": TOP_K,
        "layer_types": ["linear_attention", "indexed_attention"],
        "hc_count": 2,
        "hc_lowrank": 8,
        "indexer_n_heads": 2,
        "indexer_kv_heads": 1,
        "indexer_head_dim": 8,
        "indexer_budget": 4,
        "indexer_compress_ratio": 2,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    },
}
# The multimodal wrappers: their causal LM is the text model alone, built from ``text_config``
# (the towers' configs must still validate: dots3.note's adapters must output the text width,
# and its default vision tower lists per-layer experts for layers a one-layer tower lacks).
TINY_CONFIG_KWARGS["qwen4_exp"] = {"text_config": TINY_CONFIG_KWARGS["qwen4_exp_text"]}
TINY_CONFIG_KWARGS["dots3_note"] = {
    "text_config": TINY_CONFIG_KWARGS["dots3_note_text"],
    "vision_config": {
        "hidden_size": HIDDEN,
        "adapter_in_dim": HIDDEN,
        "adapter_out_dim": HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "intermediate_size": 32,
        "mlp_layer_types": ["dense"],
    },
    "audio_config": {
        "hidden_size": HIDDEN,
        "adapter_input_size": HIDDEN,
        "adapter_out_dim": HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "intermediate_size": 32,
    },
}


def _set(config, key: str, value) -> None:
    """Set ``key`` if the config lets us (some are read-only properties or per-layer views)."""
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        setattr(config, key, value)


def _get(config, key: str):
    try:
        return getattr(config, key, None)
    except Exception:  # per-layer attributes raise on global access
        return None


#: Keys also set when the config has them as ``None`` (no default; the model needs a value).
FILLED_WHEN_NONE = (
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "num_key_value_heads",
    "head_dim",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)


def _shrink(config, model_type: str) -> None:
    layers_before = _get(config, "num_hidden_layers")
    for key, value in TINY_SIZES.items():
        current = _get(config, key)
        shrink = isinstance(current, int) and not isinstance(current, bool)
        fill = current is None and key in FILLED_WHEN_NONE and key in vars(config)
        if shrink or fill:
            _set(config, key, value)
    mlp_types = _get(config, "mlp_layer_types")
    if isinstance(mlp_types, list) and "sparse" in mlp_types:
        _set(config, "mlp_layer_types", ["sparse"] * config.num_hidden_layers)
    if isinstance(_get(config, "qk_rope_head_dim"), int):  # MLA: no grouped KV heads
        _set(config, "head_dim", config.qk_rope_head_dim)  # the rotary part of the head
        _set(config, "num_key_value_heads", config.num_attention_heads)
        if isinstance(_get(config, "qk_head_dim"), int):
            _set(config, "qk_head_dim", config.qk_nope_head_dim + config.qk_rope_head_dim)
    layer_types = _get(config, "layer_types")
    if isinstance(layer_types, list) and layer_types:
        kinds = list(dict.fromkeys(layer_types))
        layers = max(LAYERS, len(kinds))
        _set(config, "num_hidden_layers", layers)
        _set(config, "layer_types", kinds + [kinds[-1]] * (layers - len(kinds)))
    layers_after = _get(config, "num_hidden_layers")
    for key, value in list(vars(config).items()):  # other per-layer lists: the first layers
        if key != "layer_types" and isinstance(value, list) and len(value) == layers_before:
            _set(config, key, value[:layers_after])
    for key, value in TINY_OVERRIDES.get(model_type, {}).items():
        _set(config, key, value)
    _set(config, "tie_word_embeddings", False)


def tiny_config_for_type(model_type: str):
    """A tiny config of any transformers ``model_type``: defaults shrunk by attribute name.

    Sub-configs (a composite model's ``text_config``) are shrunk too. Used by
    ``scripts/families_census.py`` to try every MoE causal-LM type, and by the
    tests of families that have no hand-written tiny config above.
    """
    from transformers import AutoConfig

    kwargs = TINY_CONFIG_KWARGS.get(model_type)
    config = AutoConfig.for_model(model_type, **(kwargs or {}))
    if kwargs is not None:  # built tiny: only the ids and untied embeddings remain to set
        for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
            _set(config, key, TINY_SIZES[key])
        _set(config, "tie_word_embeddings", False)
        return config
    _shrink(config, model_type)
    for name in getattr(config, "sub_configs", {}) or {}:
        sub = getattr(config, name, None)
        if sub is not None and hasattr(sub, "to_dict"):
            _shrink(sub, getattr(sub, "model_type", model_type))
    return config


def build_tiny_model_of_type(model_type: str, seed: int = 0, dtype: str = "float32"):
    """A tiny random ``model_type`` causal LM in memory, routers scaled up so routing is peaked."""
    import torch
    from transformers import AutoModelForCausalLM

    config = tiny_config_for_type(model_type)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if _is_router_weight(name, param):
                param.mul_(8.0)
            if name.endswith("e_score_correction_bias"):
                param.copy_(torch.randn_like(param) * 0.1)
        for name, buffer in model.named_buffers():
            if name.endswith("tid2eid"):  # DeepSeek-V4's hash table: k distinct experts per token
                rows, k = buffer.shape
                experts = int(getattr(config, "n_routed_experts", EXPERTS))
                buffer.copy_(torch.rand(rows, experts).argsort(dim=-1)[:, :k])
    return model.eval()


def _is_router_weight(name: str, param) -> bool:
    """A 2-D weight named like a router (``router``/``gate`` of an MoE block), E or E + 1 rows."""
    if (
        param.ndim != 2
        or not name.endswith(".weight")
        or param.shape[0] not in (EXPERTS, EXPERTS + 1)
    ):
        return False
    return "router" in name or bool(re.search(r"\.(gate|wg)\.weight$", name))
