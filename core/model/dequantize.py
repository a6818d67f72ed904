"""Quantised checkpoint tensors back to floats, one tensor (or one expert) at a time.

``lens collect --stream-layers`` reads a checkpoint layer by layer without
transformers' quantizers (they expect the whole model to load at once), so it
decodes the two block formats that the largest MoE checkpoints ship in:

- **MXFP4** (gpt-oss): ``*_blocks`` uint8 ``[..., G, 16]`` hold 32 FP4 (E2M1)
  values per group, two per byte, low nibble first; ``*_scales`` uint8
  ``[..., G]`` hold each group's shared E8M0 exponent (value × 2^(s − 127)),
  exactly as transformers' ``integrations/mxfp4.py`` decodes them.
- **FP8 with block scales** (DeepSeek-V3): a float8_e4m3fn ``weight``
  ``[R, C]`` and a float32 ``weight_scale_inv`` ``[⌈R/bm⌉, ⌈C/bn⌉]``; each
  ``bm × bn`` block is multiplied by its scale (the last blocks may be partial).

The arithmetic is float32 (exact for MXFP4: FP4 values times powers of two);
callers cast to the run's dtype. torch is imported lazily.
"""

from __future__ import annotations

from typing import Any

from core.errors import LensError

#: The 16 FP4 (E2M1) values by nibble: sign bit 3, two exponent bits, one mantissa bit.
FP4_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)

#: The E8M0 exponent bias of MXFP4 scales.
E8M0_BIAS = 127


def mxfp4_to_float(blocks: Any, scales: Any) -> Any:
    """``[..., G, 16]`` uint8 blocks and ``[..., G]`` uint8 scales → float32 ``[..., G·32]``."""
    import torch  # lazy: optional dependency (the collect extra)

    if tuple(blocks.shape[:-1]) != tuple(scales.shape) or blocks.shape[-1] != 16:
        raise LensError(
            f"MXFP4 blocks {tuple(blocks.shape)} and scales {tuple(scales.shape)} do not pair up "
            "(expected [..., G, 16] and [..., G])"
        )
    table = torch.tensor(FP4_E2M1, dtype=torch.float32)
    out = torch.empty((*blocks.shape[:-1], 32), dtype=torch.float32)
    out[..., 0::2] = table[(blocks & 0x0F).long()]
    out[..., 1::2] = table[(blocks >> 4).long()]
    exponents = scales.to(torch.int32) - E8M0_BIAS
    torch.ldexp(out, exponents.unsqueeze(-1), out=out)
    return out.flatten(-2)


def fp8_block_to_float(weight: Any, scale_inv: Any, block: tuple[int, int], name: str) -> Any:
    """A float8 ``[R, C]`` weight times its ``[⌈R/bm⌉, ⌈C/bn⌉]`` block scales → float32."""
    import torch  # lazy: optional dependency (the collect extra)

    rows, columns = weight.shape[-2:]
    block_rows, block_columns = block
    grid = (-(-rows // block_rows), -(-columns // block_columns))
    if tuple(scale_inv.shape[-2:]) != grid:
        raise LensError(
            f"{name}: FP8 scales have shape {tuple(scale_inv.shape)}, but a {rows}×{columns} "
            f"weight in {block_rows}×{block_columns} blocks needs {grid[0]}×{grid[1]}"
        )
    scale = scale_inv.to(torch.float32)
    scale = scale.repeat_interleave(block_rows, dim=-2)[..., :rows, :]
    scale = scale.repeat_interleave(block_columns, dim=-1)[..., :columns]
    return weight.to(torch.float32) * scale
