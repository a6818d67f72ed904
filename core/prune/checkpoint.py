"""A Hugging Face checkpoint folder read lazily: config, shard headers, and its MoE layers.

Nothing here loads a tensor: shard headers give every tensor's dtype, shape
and byte range, which is all pruning and AIMER need to find the experts.
MoE layers are found from tensor names, the same way for every family:

- router: ``….layers.{i}.{mlp|block_sparse_moe|feed_forward|mixer}.{gate|router}.{weight|bias|e_score_correction_bias}``
  with ``E`` rows;
- fused experts (GPT-OSS, transformers 5 layouts, MXFP4 ``*_blocks``/``*_scales``):
  ``….experts.{name}`` with ``E`` along dim 0;
- per-expert tensors (Mixtral ``w1/w2/w3``, Qwen/OLMoE/DeepSeek
  ``gate_proj/up_proj/down_proj``, FP8 scales): ``….experts.{e}.{name}``.

A family whose tensors do not all have E rows names a layout in its adapter
(:mod:`core.families.layouts`: LongCat-Flash's zero-computation experts, Zaya's
skip class, Doge's product keys, whose router is ``router_gate`` and experts
``down_embed``/``up_embed``); its rows are checked against that instead, and
:attr:`Checkpoint.num_experts` is then the mask's E, identity experts included.

Shared experts (``shared_expert``, ``shared_experts``, ``shared_expert_gate``)
and everything else are left as they are. Layers numbered at or above
``num_hidden_layers`` (DeepSeek-V3's multi-token-prediction layer, which
transformers does not load) are reported separately.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import LensError
from core.families import BY_MODEL_TYPE
from core.families.base import EXPERT_COUNT_KEYS, TOP_K_KEY, FamilyAdapter
from core.families.layouts import ExpertLayout
from core.io.jsonfile import read_json
from core.io.safetensors import SafetensorsHeader, TensorEntry, read_header

#: An MoE block: ``layers.{i}.{mlp|…}`` (DeepSeek-V4 saves ``layers.{i}.ffn``), DBRX's ``blocks.{i}.ffn``, JetMoE's attention
#: experts ``layers.{i}.self_attention.experts`` (a second MoE layer in the same decoder
#: layer), or the decoder layer itself (Gemma-4 keeps its router and experts there).
_BLOCK = (
    r"(?P<prefix>(?:.+\.)?(?:layers\.(?P<layer>\d+)(?:\.(?:mlp|block_sparse_moe|feed_forward|mixer"
    r"|moe|ffn|(?P<attention>self_attention\.experts)))?|blocks\.(?P<block>\d+)\.ffn))"
)
#: The router's weight/bias (or its inner linear's: Granite ``router.layer``, HunYuan ``gate.wg``,
#: AFMoE ``router.gate``, LongCat ``router.classifier``, Gemma-4 ``router.proj`` with its
#: ``router.per_expert_scale``, Zaya's last layer ``gate.router_mlp.out_proj`` and its
#: ``gate.balancing_biases``; Doge's product-key ``router_gate``), and a correction bias kept in
#: the router (DeepSeek-V3; Sarvam's ``expert_bias``), in ``moe_statics`` (ERNIE-4.5, shape
#: [1, E]) or in the block (MiniMax-M2; LFM2-MoE's ``expert_bias``; Kolibri-1 keeps it in
#: ``layers.{i}.moe.router`` beside ``mlp``).
ROUTER_RE = re.compile(
    _BLOCK
    + r"\.(?:(?:gate|router|router_gate)(?:\.(?:layer|wg|gate|classifier|proj|router_mlp\.out_proj))?"
    r"\.(?P<leaf>weight|bias|e_score_correction_bias|expert_bias|per_expert_scale|balancing_biases)"
    r"|(?:gate\.)?moe_statics\.(?P<statics>e_score_correction_bias)"
    r"|(?P<block_bias>e_score_correction_bias|expert_bias))$"
)
#: Fused ``[E, …]`` expert weights beside the router, not under ``experts``: Granite-MoE's
#: ``input_linear``/``output_linear``, Doge's ``down_embed``/``up_embed``.
BLOCK_EXPERTS_RE = re.compile(
    _BLOCK + r"\.(?P<leaf>(?:(?:input|output)_linear|(?:down|up)_embed)\.weight)$"
)
EXPERT_RE = re.compile(_BLOCK + r"\.experts\.(?:(?P<expert>\d+)\.)?(?P<leaf>[A-Za-z_].*)$")
LAYER_RE = re.compile(r"(?:^|\.)layers\.(?P<layer>\d+)\.")

#: Top-level files copied next to pruned weights (tokenizer, chat template, generation config).
COPIED_FILES = (
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.tiktoken",
    "chat_template*",
    "*.jinja",
)
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


@dataclass
class MoeLayer:
    index: int  # decoder layer number in the tensor names
    prefix: str  # e.g. "model.layers.3.mlp"
    router: dict[str, TensorEntry] = field(default_factory=dict)  # weight / bias / e_score…
    fused: dict[str, TensorEntry] = field(default_factory=dict)  # name -> [E, ...]
    per_expert: dict[int, dict[str, TensorEntry]] = field(default_factory=dict)
    leading_one: set[str] = field(default_factory=set)  # [1, E] tensors read as [E] (ERNIE)
    #: [E·n, …] tensors read as [E, n, …] (DBRX's w1/v1/w2), written back flat
    stacked: set[str] = field(default_factory=set)
    #: trailing rows of the router weight that score shared experts, kept as they are (Inkling)
    router_tail: int = 0


@dataclass
class Checkpoint:
    folder: Path
    config: dict
    shards: list[SafetensorsHeader]
    has_index: bool
    layers: list[MoeLayer]  # MoE layers in order: mask layer l is layers[l]
    num_experts: int  # a mask's E: the config's count, plus identity experts a layout scores
    top_k: int | None
    beyond: list[str]  # tensors of layers >= num_hidden_layers (e.g. DeepSeek's MTP layer)
    #: the family's layout when not every tensor has one row per expert (LongCat, Zaya, Doge)
    layout: ExpertLayout | None = None
    routed_experts: int = 0  # the config's expert count (num_experts without a layout)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))

    @property
    def weight_bytes(self) -> int:
        return sum(p.stat().st_size for p in (s.path for s in self.shards))

    def hash_routed_layers(self, family: FamilyAdapter | None) -> list[int]:
        """MoE layers (mask rows) whose router holds ``family``'s token-id → experts table.

        DeepSeek-V4 saves it beside the router weight (``ffn.gate.tid2eid``); such a
        layer's experts are named by the table, so masks must keep it whole.
        """
        if family is None or not family.hash_table_attr:
            return []
        names = {name for shard in self.shards for name in shard.tensors}
        suffix = f".{family.router_attr}.{family.hash_table_attr}"
        return [i for i, layer in enumerate(self.layers) if layer.prefix + suffix in names]

    def expert_entries(self) -> set[str]:
        """Names of every router and expert tensor of the MoE layers."""
        names: set[str] = set()
        for layer in self.layers:
            names.update(e.name for e in layer.router.values())
            names.update(e.name for e in layer.fused.values())
            for tensors in layer.per_expert.values():
                names.update(e.name for e in tensors.values())
        return names

    @classmethod
    def open(cls, model: str | Path) -> Checkpoint:
        folder = resolve_model(model)
        config = read_config(folder)
        shards, has_index = _read_shards(folder)
        return _index(folder, config, shards, has_index)


# --------------------------------------------------------------------------- finding files


def resolve_model(model: str | Path) -> Path:
    """A local model folder, or a hub id downloaded (top-level weights, config, tokenizer)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise LensError(f"{model}: is a file; --model wants the model's folder")
    text = str(model)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise LensError(f"{model}: no such model folder")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise LensError(
            f"{model}: no such folder, and huggingface_hub is not installed to download it"
        ) from None
    try:
        local = snapshot_download(text, allow_patterns=_HUB_PATTERNS, ignore_patterns=["*/*"])
    except Exception as exc:  # hub errors are many types; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LensError(
            f"{model}: no such folder, and downloading it failed ({first[:160]})"
        ) from None
    return Path(local)


def read_config(model: str | Path) -> dict:
    folder = resolve_model(model)
    path = folder / "config.json"
    if not path.exists():
        raise LensError(f"{folder}: no config.json (not a Hugging Face model folder)")
    config = read_json(path, max_bytes=64 * 1024 * 1024)
    if not isinstance(config, dict):
        raise LensError(f"{path}: not a JSON object")
    return config


def _read_shards(folder: Path) -> tuple[list[SafetensorsHeader], bool]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = read_json(index)["weight_map"]  # type: ignore[index]
            files = sorted(set(weight_map.values()))
        except (LensError, KeyError, TypeError, AttributeError):
            raise LensError(f"{index}: not a valid safetensors index (no weight_map)") from None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
            raise LensError(f"{index}: not a valid safetensors index (names must be strings)")
        for name in files:
            if "/" in name or name.startswith("."):
                raise LensError(f"{index}: refusing shard path {name!r} outside the folder")
            if not (folder / name).exists():
                raise LensError(f"{index}: names shard {name}, which is missing")
        shards = [read_header(folder / name) for name in files]
        for name, file in weight_map.items():
            header = shards[files.index(file)]
            if name not in header.tensors:
                raise LensError(f"{index}: maps {name} to {file}, which does not hold it")
        return shards, True
    single = folder / "model.safetensors"
    if single.exists():
        return [read_header(single)], False
    found = sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))
    if found:
        return [read_header(p) for p in found], False
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
        raise LensError(
            f"{folder}: has only pickle weights (.bin/.pt); lens reads safetensors only and never "
            "unpickles: convert the checkpoint to safetensors first"
        )
    raise LensError(f"{folder}: no *.safetensors weights found")


# --------------------------------------------------------------------------- the MoE layers


def _index(
    folder: Path, config: dict, shards: list[SafetensorsHeader], has_index: bool
) -> Checkpoint:
    tensors: dict[str, TensorEntry] = {}
    for shard in shards:
        for name, entry in shard.tensors.items():
            if name in tensors:
                raise LensError(f"{shard.path}: tensor {name} is also in {tensors[name].file.name}")
            tensors[name] = entry
    num_hidden = config.get("num_hidden_layers")
    layers: dict[tuple[int, int], MoeLayer] = {}
    beyond = []
    for name, entry in tensors.items():
        in_layer = LAYER_RE.search(name)
        if isinstance(num_hidden, int) and in_layer and int(in_layer["layer"]) >= num_hidden:
            beyond.append(name)
            continue
        if match := ROUTER_RE.match(name):
            layer = _layer(layers, match)
            leaf = match["leaf"] or match["statics"] or match["block_bias"]
            if entry.shape and len(entry.shape) == 2 and entry.shape[0] == 1:
                entry = _squeezed(entry)  # [1, E]: sliced along E like a vector
                layer.leading_one.add(entry.name)
            layer.router[leaf] = entry
        elif match := BLOCK_EXPERTS_RE.match(name):
            _layer(layers, match).fused[match["leaf"]] = entry
        elif match := EXPERT_RE.match(name):
            layer = _layer(layers, match)
            if match["expert"] is None:
                layer.fused[match["leaf"]] = entry
            else:
                layer.per_expert.setdefault(int(match["expert"]), {})[match["leaf"]] = entry
    moe = [layers[i] for i in sorted(layers)]
    where = str(folder)
    if not moe:
        raise LensError(f"{where}: found no MoE layers (no router and expert tensors)")
    routed = _expert_count(config, moe, where)
    family = BY_MODEL_TYPE.get(str(config.get("model_type")))
    layout = family.prune.layout if family is not None and family.prune is not None else None
    keys = moe_config(config)
    shared = keys.get("n_shared_experts")
    for layer in moe:
        if layout is None:
            _unstack(layer, routed)
            _check_layer(layer, routed, where, shared if isinstance(shared, int) else 0)
        else:
            _check_layout(layer, layout, config, routed, where)
    top_k = next(
        (
            keys[k]
            for k in (TOP_K_KEY, "moe_k", "moe_topk", "moe_top_k", "top_k_experts")
            if k in keys
        ),
        None,
    )
    return Checkpoint(
        folder=folder,
        config=config,
        shards=shards,
        has_index=has_index,
        layers=moe,
        num_experts=routed if layout is None else layout.mask_experts(config, routed),
        top_k=int(top_k) if isinstance(top_k, int) else None,
        beyond=sorted(beyond),
        layout=layout,
        routed_experts=routed,
    )


def _unstack(layer: MoeLayer, num_experts: int) -> None:
    """Read DBRX's ``[E·n, H]`` expert matrices as ``[E, n, H]`` (same bytes, row-major).

    A fused expert tensor whose first dim is a multiple of E (and not E) stacks each
    expert's n rows in turn; seen this way it slices by expert like any fused tensor.
    """
    for leaf, entry in list(layer.fused.items()):
        rows = entry.shape[0] if entry.shape else 0
        if len(entry.shape) == 2 and rows > num_experts and rows % num_experts == 0:
            layer.fused[leaf] = dataclasses.replace(
                entry, shape=(num_experts, rows // num_experts, entry.shape[1])
            )
            layer.stacked.add(entry.name)


def _squeezed(entry: TensorEntry) -> TensorEntry:
    """A ``[1, E]`` tensor seen as ``[E]`` (same bytes), so it slices by expert like a bias."""
    return dataclasses.replace(entry, shape=tuple(entry.shape[1:]))


def _layer(layers: dict[tuple[int, int], MoeLayer], match: re.Match) -> MoeLayer:
    """The layer of a matched tensor, keyed so that JetMoE's MLP experts come before its
    attention experts in the same decoder layer (the order the loaded model lists them)."""
    index = int(match["layer"] if match["layer"] is not None else match["block"])
    key = (index, 1 if match["attention"] else 0)
    if key not in layers:
        layers[key] = MoeLayer(index=index, prefix=match["prefix"])
    return layers[key]


#: Sub-configs that may hold the MoE keys: a multimodal model's ``text_config`` (Llama-4),
#: DBRX's ``ffn_config``.
MOE_SUB_CONFIGS = ("text_config", "ffn_config")


def moe_config_key(config: dict) -> str | None:
    """Which sub-config holds the MoE keys (:data:`MOE_SUB_CONFIGS`), or ``None``: the config itself."""
    if any(isinstance(config.get(k), int) for k in EXPERT_COUNT_KEYS):
        return None
    for key in MOE_SUB_CONFIGS:
        sub = config.get(key)
        if isinstance(sub, dict) and any(isinstance(sub.get(k), int) for k in EXPERT_COUNT_KEYS):
            return key
    return None


def moe_config(config: dict) -> dict:
    """The part of ``config`` that holds the MoE keys: itself, or the sub-config that does."""
    key = moe_config_key(config)
    return config if key is None else config[key]


def _expert_count(config: dict, layers: list[MoeLayer], where: str) -> int:
    config = moe_config(config)
    for key in EXPERT_COUNT_KEYS:
        if isinstance(config.get(key), int):
            return int(config[key])
    weight = layers[0].router.get("weight")
    if weight is None:
        raise LensError(f"{where}: config.json has no expert count and no router weight was found")
    return weight.shape[0]


def _check_layout(
    layer: MoeLayer, layout: ExpertLayout, config: dict, routed: int, where: str
) -> None:
    """Every router and fused tensor has a row count the family's layout expects, and
    per-expert tensors (LongCat's saved layout) exist for every routed or every masked id;
    LongCat's zero-computation experts are saved with ``gate_proj``/``up_proj`` only."""
    if "weight" not in layer.router:
        raise LensError(f"{where}: layer {layer.index} has experts but no router weight")
    if not layer.fused and not layer.per_expert:
        raise LensError(f"{where}: layer {layer.index} has a router but no expert tensors")
    counts = layout.row_counts(config, routed, False)
    if layer.per_expert and sorted(layer.per_expert) not in [list(range(n)) for n in counts]:
        raise LensError(
            f"{where}: layer {layer.index} has per-expert tensors for {len(layer.per_expert)} "
            f"experts, expected ids 0..n - 1 for n in {sorted(counts)}"
        )
    for router, entries in ((True, layer.router.values()), (False, layer.fused.values())):
        for entry in entries:
            allowed = layout.row_counts(config, routed, router)
            if not entry.shape or entry.shape[0] not in allowed:
                raise LensError(
                    f"{where}: {entry.name} has shape {list(entry.shape)}, expected "
                    f"{' or '.join(map(str, sorted(allowed)))} rows for config.json's {routed} "
                    "experts"
                )


def _check_layer(layer: MoeLayer, num_experts: int, where: str, shared: int = 0) -> None:
    """Every router and fused tensor has E rows; a router weight may have ``shared`` more,
    the rows that score the shared experts (Inkling), which pruning keeps."""
    if "weight" not in layer.router:
        raise LensError(f"{where}: layer {layer.index} has experts but no router weight")
    weight = layer.router["weight"]
    if shared > 0 and weight.shape and weight.shape[0] == num_experts + shared:
        layer.router_tail = shared
    for entry in [*layer.router.values(), *layer.fused.values()]:
        rows = num_experts + (layer.router_tail if entry is weight else 0)
        if not entry.shape or entry.shape[0] != rows:
            raise LensError(
                f"{where}: {entry.name} has shape {list(entry.shape)}, expected {num_experts} "
                "experts along dim 0 (config.json's expert count)"
            )
    if layer.per_expert and sorted(layer.per_expert) != list(range(num_experts)):
        raise LensError(
            f"{where}: layer {layer.index} has per-expert tensors for {len(layer.per_expert)} "
            f"experts, expected ids 0..{num_experts - 1}"
        )
    if not layer.fused and not layer.per_expert:
        raise LensError(f"{where}: layer {layer.index} has a router but no expert tensors")
