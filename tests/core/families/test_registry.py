"""The family registry: one adapter per module, every block class real, lookups consistent,
and collection, evaluation and pruning reading the same adapter."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import core.families
from core.errors import LensError
from core.families import ADAPTERS, BY_BLOCK_CLASS, BY_MODEL_TYPE, by_name, for_model_type
from core.families.base import FamilyAdapter

#: Modules of the package that are not one family's adapter.
NOT_FAMILIES = {"base", "routing", "layers", "layouts", "tables", "generic"}
ROOT = Path(__file__).resolve().parents[3]


def test_every_family_module_defines_one_registered_adapter():
    names = {m.name for m in pkgutil.iter_modules(core.families.__path__)} - NOT_FAMILIES
    assert {"gpt_oss", "mixtral", "deepseek_v3", "llama4"} <= names  # the package is read
    registered = {a.name for a in ADAPTERS}
    for name in names:
        adapter = importlib.import_module(f"core.families.{name}").ADAPTER
        assert isinstance(adapter, FamilyAdapter)
        assert adapter.name == name  # one file per family, named as it is recorded
        assert name in registered
    assert len(registered) == len(ADAPTERS) == len(names)


def test_lookups_are_unambiguous():
    classes = [c for a in ADAPTERS for c in a.block_classes]
    types = [t for a in ADAPTERS for t in a.model_types]
    assert len(classes) == len(set(classes)) == len(BY_BLOCK_CLASS)
    assert len(types) == len(set(types)) == len(BY_MODEL_TYPE)
    for adapter in ADAPTERS:
        assert adapter.block_classes and adapter.model_types, adapter.name
        assert by_name(adapter.name) is adapter
        for model_type in adapter.model_types:
            assert BY_MODEL_TYPE[model_type] is adapter


def test_only_biased_routers_prune_uneven_masks_and_prunable_families_mask_in_memory():
    """Evaluation checks its masked routing against lens prune, so every prunable family masks
    in memory. Uneven masks are padded only where a router bias makes the padding unreachable:
    GPT-OSS's, and DeepSeek-V4's correction bias (saved as ``gate.bias``), whose hash-routed
    layers keep all E while the learned ones are pruned."""
    prunable = {a.name for a in ADAPTERS if a.prune is not None}
    maskable = {a.name for a in ADAPTERS if a.masks_in_memory}
    assert maskable == prunable
    with_layout = {a.name for a in ADAPTERS if a.prune is not None and a.prune.layout}
    assert with_layout == {"longcat_flash", "zaya", "doge"}
    assert [a.name for a in ADAPTERS if a.masked_block] == ["doge"]
    assert {"gpt_oss", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3"} <= prunable
    assert [a.name for a in ADAPTERS if a.prune and a.prune.router_bias] == [
        "gpt_oss",
        "deepseek_v4",
    ]
    # Families pruned with group-consistency checks are exactly those with group-limited routing.
    from core.families.routing import sigmoid_grouped_top_k, softmax_greedy_scaled

    group_limited = {sigmoid_grouped_top_k, softmax_greedy_scaled}
    for adapter in ADAPTERS:
        if adapter.prune is not None:
            # A.X K2 and Beam: the factory's routing, grouped when the router has groups
            route = adapter.masked_routing or adapter.masked_block
            optional = "sigmoid_bias_optional_groups" in route.__qualname__
            grouped = adapter.masked_routing in group_limited or optional
            assert adapter.prune.grouped_routing == grouped, adapter.name


def test_pruning_refuses_a_model_type_without_prune_support_in_one_line():
    assert for_model_type("mixtral", "m").name == "mixtral"
    for model_type in ("qwen2", "llama"):
        with pytest.raises(LensError, match=f"model_type '{model_type}' is not supported"):
            for_model_type(model_type, "m")


def test_the_package_imports_without_torch():
    code = (
        "import sys; import core.families, core.families.layers, core.families.tables; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_each_family_is_found_on_its_real_transformers_class(adapter):
    """A meta-device skeleton of the family's tiny config: its blocks get this adapter."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from core.families.layers import find_moe_layers
    from tests.tiny_models import _config

    # Named as its model type, or (Aria, Inkling, MiniMax-M3-VL) after its text model's type.
    model_type = adapter.name if adapter.name in adapter.model_types else adapter.model_types[0]
    config = _config(model_type, vocab_size=320)
    assert config.model_type in adapter.model_types
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    layers = find_moe_layers(model)
    assert {layer.family.name for layer in layers} == {adapter.name}
    assert {type(layer.block).__name__ for layer in layers} <= set(adapter.block_classes)
    # Doge's product keys need a square E (4²); Zaya's E counts its skip expert.
    experts = {"doge": 16, "zaya": 9}.get(adapter.name, 8)
    assert all(layer.num_experts == experts for layer in layers)


def test_an_unlisted_block_with_the_fused_shape_is_generic():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from core.families.layers import find_moe_layers

    class Experts(torch.nn.Module):
        has_gate = True  # what @use_experts_implementation sets

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = torch.nn.Linear(4, 6, bias=False)
            self.experts = Experts()
            self.top_k = 2

    model = torch.nn.Sequential(Block())
    (layer,) = find_moe_layers(model)
    assert (layer.family.name, layer.num_experts, layer.top_k) == ("generic", 6, 2)
    assert layer.family.masked_routing is None and layer.family.prune is None
    with pytest.raises(LensError, match="no MoE layers found"):
        find_moe_layers(torch.nn.Sequential(torch.nn.Linear(4, 4)))
