"""The MoE family adapters, one module each, and the registry every tool reads.

Collection (:mod:`core.families.layers`), in-memory masking
(:mod:`core.evaluate.masking`), pruning (:mod:`core.prune.surgery`) and the
README's family tables (:mod:`core.families.tables`) all look a family up
here, by MoE block class name or by config ``model_type``. To add a family:
write ``core/families/<name>.py`` defining ``ADAPTER``, add it to
:data:`ADAPTERS`, and add its tiny model to ``tests/tiny_models.py``.
"""

from __future__ import annotations

from core.errors import LensError
from core.families import (
    afmoe,
    aria,
    axk1,
    axk2,
    bailing_hybrid,
    beam,
    cohere2_moe,
    dbrx,
    deepseek_v2,
    deepseek_v3,
    deepseek_v4,
    deepseek_v32,
    doge,
    dots1,
    dots3_note_text,
    ernie4_5_moe,
    exaone_moe,
    flex_olmo,
    gemma4,
    glm4_moe,
    glm_moe_dsa,
    gpt_oss,
    granitemoe,
    granitemoe_swa,
    granitemoehybrid,
    granitemoeshared,
    hunyuan_v1_moe,
    hy_v3,
    hy_v4,
    inkling,
    inkling2,
    jamba,
    jetmoe,
    kimi_linear,
    kolibri1,
    laguna,
    lara_mini,
    lfm2_moe,
    llama4,
    longcat_flash,
    mellum,
    mimo_v2_flash,
    minimax,
    minimax_m2,
    minimax_m3_vl,
    mixtral,
    nemotron_h,
    olmoe,
    phimoe,
    qwen2_moe,
    qwen3_5_moe,
    qwen3_moe,
    qwen3_next,
    qwen4_exp,
    solar_open,
    zaya,
)
from core.families.base import FamilyAdapter

#: Every listed family, in the order the README's tables show them.
ADAPTERS: tuple[FamilyAdapter, ...] = tuple(
    module.ADAPTER
    for module in (
        gpt_oss,
        mixtral,
        qwen2_moe,
        qwen3_moe,
        qwen3_next,
        qwen3_5_moe,
        qwen4_exp,
        olmoe,
        deepseek_v2,
        deepseek_v3,
        deepseek_v32,
        glm4_moe,
        glm_moe_dsa,
        dots1,
        kimi_linear,
        exaone_moe,
        mimo_v2_flash,
        solar_open,
        axk1,
        axk2,
        beam,
        nemotron_h,
        bailing_hybrid,
        ernie4_5_moe,
        granitemoe,
        granitemoeshared,
        granitemoe_swa,
        phimoe,
        jamba,
        minimax,
        minimax_m2,
        minimax_m3_vl,
        hunyuan_v1_moe,
        hy_v3,
        hy_v4,
        afmoe,
        flex_olmo,
        mellum,
        lara_mini,
        cohere2_moe,
        laguna,
        kolibri1,
        lfm2_moe,
        llama4,
        gemma4,
        longcat_flash,
        dots3_note_text,
        deepseek_v4,
        granitemoehybrid,
        dbrx,
        jetmoe,
        doge,
        zaya,
        aria,
        inkling,
        inkling2,
    )
)

#: Adapter by transformers MoE block class name.
BY_BLOCK_CLASS: dict[str, FamilyAdapter] = {
    cls: adapter for adapter in ADAPTERS for cls in adapter.block_classes
}
#: Adapter by config ``model_type``.
BY_MODEL_TYPE: dict[str, FamilyAdapter] = {
    model_type: adapter for adapter in ADAPTERS for model_type in adapter.model_types
}


def by_name(name: str) -> FamilyAdapter | None:
    """The adapter recorded as ``name`` (a bundle's or evaluation's ``family``)."""
    return next((a for a in ADAPTERS if a.name == name), None)


def for_model_type(model_type: object, where: str, *, tool: str = "lens prune") -> FamilyAdapter:
    """The adapter of a config's ``model_type`` that ``tool`` (pruning) supports, or a one-line error."""
    adapter = BY_MODEL_TYPE.get(str(model_type))
    if adapter is not None and adapter.prune is None and adapter.no_prune_reason:
        raise LensError(
            f"{where}: {tool} cannot prune {adapter.label} ({model_type!r}): "
            f"{adapter.no_prune_reason}"
        )
    if adapter is None or adapter.prune is None:
        supported = ", ".join(a.name for a in ADAPTERS if a.prune is not None)
        raise LensError(
            f"{where}: model_type {model_type!r} is not supported by {tool} "
            f"(supported: {supported})"
        )
    return adapter
