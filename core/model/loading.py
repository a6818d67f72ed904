"""Load a transformers MoE model and its tokenizer, with clear errors.

Collection and evaluation load models here. A local folder or a hub id both
work (the hub path needs network access and is not exercised by the tests).
``trust_remote_code`` is always passed explicitly: ``False`` unless the user
asked for it, because transformers' default (``None``) asks on stdin whether
to run a checkpoint's own Python code, which hangs a headless run. torch and
transformers are imported inside the functions that need them, so the
package's options and docs import without them. GPT-OSS checkpoints quantised to MXFP4 are loaded
dequantised: on GPU the MXFP4 kernel replaces the MLP with one that bypasses
the router module, and the hooks would see nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.errors import LensError
from core.families.layers import find_moe_layers
from core.model.options import ModelOptions


def resolve_device(device: str) -> Any:
    import torch  # lazy: optional dependency (the collect extra)

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise LensError(f"--device {device!r} is not a device (try cpu, cuda or cuda:1)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise LensError(f"--device {device}: CUDA is not available on this machine")
    return resolved


def resolve_dtype(dtype: str) -> Any:
    import torch  # lazy: optional dependency (the collect extra)

    return "auto" if dtype == "auto" else getattr(torch, dtype)


def _load_error(model: str, exc: BaseException) -> LensError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if Path(model).exists():
        return LensError(f"{model}: could not load the model ({text[:240]})")
    return LensError(
        f"{model}: not a local model folder, and loading it from the hub failed ({text[:240]})"
    )


def remote_code(options: ModelOptions) -> dict[str, bool]:
    """The ``trust_remote_code`` keyword for every transformers loader: always explicit."""
    return {"trust_remote_code": bool(options.trust_remote_code)}


def load_model_config(options: ModelOptions) -> Any:
    """The model's config, with clear errors for a missing folder or an unreachable hub id."""
    from transformers import AutoConfig  # lazy: optional dependency (the collect extra)

    model_id = options.model
    path = Path(model_id)
    if (model_id.startswith((".", "/", "~")) or path.exists()) and not path.is_dir():
        raise LensError(f"{model_id}: no such model folder")
    if path.is_dir() and not (path / "config.json").exists():
        raise LensError(f"{model_id}: not a model folder (no config.json)")
    try:
        return AutoConfig.from_pretrained(model_id, **remote_code(options))
    except Exception as exc:
        raise _load_error(model_id, exc) from None


def preflight(options: ModelOptions) -> None:
    """Fail fast, before any weight is read: is this a model with MoE layers we can hook?

    The model is built on the meta device (no memory, no weights), so a 120B
    checkpoint without MoE layers is refused in seconds, not after loading.
    """
    import torch  # lazy: optional dependency, only runs that load a model need it
    from transformers import AutoModelForCausalLM

    if not options.device_map:
        resolve_device(options.device)
    model_config = load_model_config(options)
    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(model_config, **remote_code(options))
    except Exception:
        return  # some configs (quantised, remote code) only build through from_pretrained
    find_moe_layers(skeleton)


def load_model_and_tokenizer(options: ModelOptions) -> tuple[Any, Any]:
    """The model in eval mode on its device(s), and a tokenizer that can pad."""
    from transformers import AutoModelForCausalLM  # lazy: optional dependency

    model_id = options.model
    remote = remote_code(options)
    model_config = load_model_config(options)
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(options.dtype), **remote}
    quant = getattr(model_config, "quantization_config", None)
    quant_method = quant.get("quant_method") if isinstance(quant, dict) else None
    if quant_method == "mxfp4":
        from transformers import Mxfp4Config  # lazy: only MXFP4 checkpoints need it

        kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    device = None
    if options.device_map:
        kwargs["device_map"] = options.device_map
    else:
        device = resolve_device(options.device)
    try:
        with _quiet_progress_bars():
            model = AutoModelForCausalLM.from_pretrained(model_id, **kwargs)
    except Exception as exc:
        raise _load_error(model_id, exc) from None
    if device is not None:
        model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model, load_tokenizer(options)


def load_tokenizer(options: ModelOptions) -> Any:
    """The model's tokenizer, able to pad, on the options' padding side."""
    from transformers import AutoTokenizer  # lazy: optional dependency

    model_id = options.model
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, **remote_code(options))
    except Exception as exc:
        raise LensError(f"{model_id}: could not load its tokenizer ({exc})") from None
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of every statistic; any id works as filler.
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is not None:
            tokenizer.pad_token = fallback
    if options.padding_side:
        tokenizer.padding_side = options.padding_side
    return tokenizer


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """transformers' own "Loading weights" bars would interleave with ours."""
    from transformers.utils import logging as hf_logging  # lazy: optional dependency

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class ModelCache:
    """Keeps the last loaded model, so several runs on one model load it once.

    Scanning many candidate calibration sets with a 120B model should not pay
    minutes of loading per set: ``lens collect -d a.jsonl -d b.jsonl ...`` shares
    one cache across its runs. The tokenizer's padding side follows each run's
    options.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._loaded: tuple[Any, Any, str] | None = None

    def get(self, options: ModelOptions) -> tuple[Any, Any]:
        key = (
            options.model,
            options.dtype,
            options.device,
            options.device_map,
            options.trust_remote_code,
        )
        if key != self._key or self._loaded is None:
            self._loaded = None  # free the previous model before loading the next
            # Load with the tokenizer's own padding side; each run then applies its own.
            model, tokenizer = load_model_and_tokenizer(replace(options, padding_side=None))
            self._loaded = (model, tokenizer, getattr(tokenizer, "padding_side", "right"))
            self._key = key
        model, tokenizer, default_side = self._loaded
        tokenizer.padding_side = options.padding_side or default_side
        return model, tokenizer


def describe_model(model: Any) -> dict[str, str]:
    """Provenance about the loaded model, for bundle metadata."""
    config = getattr(model, "config", None)
    return {
        "model_type": str(getattr(config, "model_type", "unknown")),
        "architecture": type(model).__name__,
        "model_dtype": str(getattr(model, "dtype", "unknown")).removeprefix("torch."),
        "device": str(getattr(model, "device", "unknown")),
    }
