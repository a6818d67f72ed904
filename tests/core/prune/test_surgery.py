"""lens prune: pruned checkpoints reload and compute what the original does with the dropped
experts made unselectable; the files never hold a dropped expert; bad masks are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import LensError
from core.masks import Mask
from core.model_names import model_identity
from core.prune.surgery import prune_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

E, TOP_K = 8, 2  # tests/tiny_models.py sizes
TOKENS = torch.tensor(
    [
        [5, 17, 99, 3, 250, 41, 7, 7, 180, 33, 64, 12],
        [201, 8, 8, 90, 14, 300, 6, 77, 150, 21, 3, 44],
        [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22],
    ]
)

# (family, shards, kept per layer). DeepSeek-V3's tiny model routes in 2 groups of 4 (one
# group picked per token): its masks keep 2 experts of each group.
CASES = [
    ("gpt_oss", True, [[0, 2, 5, 7], [1, 3, 4, 6]]),
    ("gpt_oss", False, [[1, 4, 6], [0, 2, 3, 5, 7]]),  # uneven: padded with unreachable experts
    ("mixtral", False, [[0, 2, 5, 7], [1, 2, 4, 6]]),
    ("qwen2_moe", False, [[1, 2, 3, 6], [0, 4, 5, 7]]),
    ("qwen3_moe", True, [[0, 1, 5, 6], [2, 3, 6, 7]]),
    ("olmoe", False, [[0, 3, 4, 7], [1, 2, 5, 6]]),
    ("deepseek_v3", True, [[0, 2, 5, 7], [1, 3, 4, 6]]),
]


def make_mask(folder: Path, layers, model: str | None = None) -> Mask:
    return Mask(
        model=model or str(folder), num_experts=E, criterion="test", sources=[], layers=layers
    )


def load(folder: Path):
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=torch.float32, output_loading_info=True
    )
    return model.eval(), info


def moe_blocks(model):
    return [layer.mlp for layer in model.model.layers if hasattr(layer.mlp, "experts")]


def forbid_dropped(model, family: str, layers) -> None:
    """Make the dropped experts unselectable in the original model (the reference).

    GPT-OSS: router bias −inf (its logits). DeepSeek-V3: the selection score's
    correction bias −inf (sigmoid(−inf) + bias would still be selectable).
    Softmax routers (no bias): their forward with the dropped logits at −inf,
    written out here from the family's routing (softmax over all E, top-k,
    renormalised if the family does).
    """
    for block, kept in zip(moe_blocks(model), layers):
        dropped = [e for e in range(E) if e not in kept]
        with torch.no_grad():
            if family == "gpt_oss":
                block.router.bias[dropped] = float("-inf")
            elif family == "deepseek_v3":
                block.gate.e_score_correction_bias[dropped] = float("-inf")
            else:
                router = block.gate
                renorm = family == "mixtral" or bool(model.config.norm_topk_prob)
                router.forward = _masked_softmax_router(router, dropped, renorm)


def _masked_softmax_router(router, dropped, renorm):
    def forward(hidden_states):
        hidden = hidden_states.reshape(-1, router.weight.shape[1])
        logits = torch.nn.functional.linear(hidden, router.weight)
        logits[:, dropped] = float("-inf")
        probs = torch.softmax(logits.float(), dim=-1)
        top, index = torch.topk(probs, router.top_k, dim=-1)
        if renorm:
            top = top / top.sum(dim=-1, keepdim=True)
        return logits, top.to(logits.dtype), index

    return forward


def logits_of(model) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS, attention_mask=torch.ones_like(TOKENS)).logits


def expert_slabs(folder: Path, layers_kept) -> tuple[set[str], set[str]]:
    """Hashes of (dropped, kept) experts' bytes in every router/expert tensor of ``folder``."""
    from safetensors.numpy import load_file

    dropped, kept = set(), set()
    moe = {}
    for path in sorted(folder.glob("*.safetensors")):
        for name, array in load_file(path).items():
            moe[name] = array
    for name, array in moe.items():
        if ".experts." not in name and not name.endswith(
            ("router.weight", "router.bias", "gate.weight", "e_score_correction_bias")
        ):
            continue
        if ".shared_expert" in name:
            continue
        layer = int(name.split(".layers.")[1].split(".")[0])
        ids = layers_kept[layer]
        parts = name.split(".experts.")
        if len(parts) == 2 and parts[1].split(".")[0].isdigit():
            expert = int(parts[1].split(".")[0])
            (kept if expert in ids else dropped).add(_hash(array))
        else:
            for e in range(array.shape[0]):
                (kept if e in ids else dropped).add(_hash(array[e]))
    return dropped, kept


def output_slabs(folder: Path) -> set[str]:
    from safetensors.numpy import load_file

    hashes = set()
    for path in sorted(folder.glob("*.safetensors")):
        for array in load_file(path).values():
            hashes.add(_hash(array))
            if array.ndim >= 1:
                hashes.update(_hash(row) for row in array)
    return hashes


def _hash(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.mark.parametrize("family,shards,layers", CASES, ids=lambda v: str(v)[:12])
def test_pruned_checkpoint_reloads_and_matches_the_masked_original(
    tiny_model, tmp_path, family, shards, layers
):
    source = tiny_model(family, shards=shards)
    out = tmp_path / "pruned"
    result = prune_checkpoint(source, make_mask(source, layers), out)
    width = max(len(ids) for ids in layers)

    pruned, info = load(out)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    assert moe_blocks(pruned)[0].experts.num_experts == width
    assert pruned.config.num_experts_per_tok == TOP_K

    original, _ = load(source)
    unmasked = logits_of(original)
    forbid_dropped(original, family, layers)
    reference = logits_of(original)
    # The mask matters for these inputs, so equality below is not an accident.
    assert (reference - unmasked).abs().max() > 1e-3
    torch.testing.assert_close(logits_of(pruned), reference, atol=1e-5, rtol=0)

    # The saved files hold every kept expert and no dropped one.
    # (Slabs equal to a kept one, like all-zero biases, say nothing and are left out.)
    dropped, kept = expert_slabs(source, layers)
    dropped -= kept
    saved = output_slabs(out)
    assert len(dropped) >= 4 * len(layers) and not (dropped & saved)
    assert kept <= saved
    assert result.kept_per_layer == [len(ids) for ids in layers]
    assert result.padded_per_layer == [width - len(ids) for ids in layers]
    for name in ("config.json", "generation_config.json", "tokenizer.json", "lens-prune.json"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if key in json.loads((source / "config.json").read_text()):
            assert config[key] == width
    if shards:
        index = json.loads((out / "model.safetensors.index.json").read_text())
        files = sorted(p.name for p in out.glob("*.safetensors"))
        assert sorted(set(index["weight_map"].values())) == files and len(files) > 1
    assert result.bytes_out < result.bytes_in


def test_qwen2_moe_shared_expert_is_untouched(tiny_model, tmp_path):
    from safetensors.numpy import load_file

    source = tiny_model("qwen2_moe")
    out = tmp_path / "p"
    prune_checkpoint(source, make_mask(source, [[0, 1, 2, 3], [4, 5, 6, 7]]), out)
    before, after = load_file(source / "model.safetensors"), load_file(out / "model.safetensors")
    shared = [n for n in before if "shared_expert" in n]
    assert len(shared) == 8
    for name in shared:
        np.testing.assert_array_equal(before[name], after[name])


def test_deepseek_pruned_config_keeps_groups(tiny_model, tmp_path):
    source = tiny_model("deepseek_v3", shards=True)
    out = tmp_path / "p"
    prune_checkpoint(source, make_mask(source, [[0, 2, 5, 7], [1, 3, 4, 6]]), out)
    config = json.loads((out / "config.json").read_text())
    assert config["n_routed_experts"] == 4 and config["n_group"] == 2 and config["topk_group"] == 1


def test_bfloat16_gpt_oss_pads_with_a_finite_most_negative_bias(tiny_model, tmp_path):
    from safetensors.torch import load_file

    source = tiny_model("gpt_oss", dtype="bfloat16")
    out = tmp_path / "p"
    prune_checkpoint(source, make_mask(source, [[2, 3], [0, 1, 4, 5]]), out)
    tensors = load_file(out / "model.safetensors")
    bias = tensors["model.layers.0.mlp.router.bias"]
    assert bias.dtype == torch.bfloat16 and bias.shape == (4,)
    assert torch.isfinite(bias).all()
    assert bias[2:].tolist() == [torch.finfo(torch.bfloat16).min] * 2
    assert not tensors["model.layers.0.mlp.experts.gate_up_proj"][2:].any()
    original = load_file(source / "model.safetensors")
    torch.testing.assert_close(bias[:2], original["model.layers.0.mlp.router.bias"][[2, 3]])
    pruned, info = load(out)
    assert not info["missing_keys"] and not info["unexpected_keys"]


# --------------------------------------------------------------------------- refusals


def _refused(source, tmp_path, mask, match, **kwargs):
    out = tmp_path / "refused"
    with pytest.raises(LensError, match=match) as err:
        prune_checkpoint(source, mask, out, **kwargs)
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".refused*"))


def test_masks_that_do_not_fit_the_model_are_refused(tiny_model, tmp_path):
    source = tiny_model("mixtral")
    _refused(source, tmp_path, make_mask(source, [[0, 1, 2]]), "mask has 1 layers but .* has 2")
    _refused(
        source,
        tmp_path,
        make_mask(source, [[0, 1], [2]]),
        "layer 1 keeps 1 experts, fewer than the model's top-k of 2",
    )
    wide = Mask(model=str(source), num_experts=16, criterion="t", sources=[], layers=[[0, 1]] * 2)
    _refused(source, tmp_path, wide, "mask is for 16 experts per layer but .* has 8")
    other = make_mask(source, [[0, 1], [2, 3]], model="someone/other-moe")
    _refused(source, tmp_path, other, "mask is for model 'someone/other-moe'.*--allow-other-model")
    uneven = make_mask(source, [[0, 1], [2, 3, 4]])
    _refused(source, tmp_path, uneven, "Mixtral configs hold one expert count .*lens mask --r")


def test_clamp_top_k_and_allow_other_model_are_explicit(tiny_model, tmp_path):
    source = tiny_model("gpt_oss")
    result = prune_checkpoint(
        source,
        make_mask(source, [[3], [1, 5]], model="renamed"),
        tmp_path / "p",
        clamp_top_k=True,
        allow_other_model=True,
    )
    assert result.top_k_after == 1 and result.num_experts_after == 2
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    assert config["num_experts_per_tok"] == 1 and config["num_local_experts"] == 2


def test_deepseek_masks_that_would_change_group_routing_are_refused(tiny_model, tmp_path):
    source = tiny_model("deepseek_v3")
    _refused(
        source,
        tmp_path,
        make_mask(source, [[0, 1, 2, 4], [1, 3, 4, 6]]),
        r"layer 0 keeps \[3, 1\] experts per group",
    )


def test_out_must_be_new_or_empty(tiny_model, tmp_path):
    source = tiny_model("mixtral")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(LensError, match="already exists and is not an empty folder"):
        prune_checkpoint(source, make_mask(source, [[0, 1], [2, 3]]), busy)
    empty = tmp_path / "empty"
    empty.mkdir()
    prune_checkpoint(source, make_mask(source, [[0, 1], [2, 3]]), empty)
    assert (empty / "model.safetensors").exists()
    with pytest.raises(LensError, match="inside the source model folder"):
        prune_checkpoint(source, make_mask(source, [[0, 1], [2, 3]]), source / "sub")


def test_pickle_only_and_unknown_models_are_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "mixtral"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    mask = Mask(model=str(folder), num_experts=8, criterion="t", sources=[], layers=[[0, 1]])
    with pytest.raises(LensError, match="only pickle weights .* never unpickles"):
        prune_checkpoint(folder, mask, tmp_path / "o")
    with pytest.raises(LensError, match="no such model folder"):
        prune_checkpoint(tmp_path / "nope", mask, tmp_path / "o")


def test_model_identity_compares_hub_ids_paths_and_cache_folders():
    assert model_identity("openai/gpt-oss-20b") == "gpt-oss-20b"
    assert model_identity("/data/models/GPT-OSS-20B/") == "gpt-oss-20b"
    assert (
        model_identity("/root/.cache/huggingface/hub/models--openai--gpt-oss-20b/snapshots/abc")
        == "gpt-oss-20b"
    )


def test_progress_reaches_the_total_and_cancel_leaves_nothing(tiny_model, tmp_path):
    from core.prune.surgery import PruneCancelled

    source = tiny_model("qwen3_moe", shards=True)
    mask = make_mask(source, [[0, 1], [2, 3]])
    updates = []
    prune_checkpoint(source, mask, tmp_path / "p", progress=updates.append)
    last = updates[-1]
    assert last.bytes_done == last.bytes_total > 0 and last.shard == last.shards > 1
    assert all(a.bytes_done <= b.bytes_done for a, b in zip(updates, updates[1:]))
    calls = []
    with pytest.raises(PruneCancelled):
        prune_checkpoint(
            source, mask, tmp_path / "c", should_stop=lambda: calls.append(1) or len(calls) > 3
        )
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".c.*"))


def test_deepseek_aimer_mask_with_groups_prunes_to_the_same_routing(tiny_model, tmp_path):
    from core.masks import make_mask as mask_from

    source = tiny_model("deepseek_v3")
    mask = mask_from("aimer", model=str(source), r=4, groups=2)
    prune_checkpoint(source, mask, tmp_path / "p")
    pruned, info = load(tmp_path / "p")
    assert not info["missing_keys"] and not info["unexpected_keys"]
    original, _ = load(source)
    forbid_dropped(original, "deepseek_v3", mask.layers)
    torch.testing.assert_close(logits_of(pruned), logits_of(original), atol=1e-5, rtol=0)


def test_deepseek_multi_token_prediction_layer_is_dropped(tiny_model, tmp_path):
    from safetensors.numpy import load_file, save_file

    source = tiny_model("deepseek_v3")
    with_mtp = tmp_path / "mtp"
    with_mtp.mkdir()
    for path in source.iterdir():
        if path.name != "model.safetensors":
            (with_mtp / path.name).write_bytes(path.read_bytes())
    tensors = load_file(source / "model.safetensors")
    extra = {n.replace("layers.1.", "layers.2."): v for n, v in tensors.items() if "layers.1." in n}
    save_file({**tensors, **extra}, str(with_mtp / "model.safetensors"), metadata={"format": "pt"})
    result = prune_checkpoint(
        with_mtp, make_mask(with_mtp, [[0, 2, 5, 7], [1, 3, 4, 6]]), tmp_path / "p"
    )
    saved = load_file(tmp_path / "p" / "model.safetensors")
    assert not [n for n in saved if "layers.2." in n]
    assert json.loads((tmp_path / "p" / "config.json").read_text())["num_nextn_predict_layers"] == 0
    assert any("multi-token prediction" in note for note in result.notes)
    load(tmp_path / "p")
