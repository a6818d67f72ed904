"""Options shared by the commands that load a model and read text (collect, evaluate).

They mean the same in both commands and map onto the one
:class:`~core.model.options.ModelOptions` that ``CollectConfig`` and
``EvaluateConfig`` both hold, so they are declared once, and
:func:`model_options` builds that object from a command's parsed options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from core.model.options import ModelOptions

_SHARED = (
    click.option(
        "--text-field",
        default="text",
        show_default=True,
        help="Field holding the text in .jsonl/.json/.parquet/datasets.",
    ),
    click.option("--split", default="train", show_default=True, help="Split of a `datasets` name."),
    click.option(
        "--dataset-config", default=None, help="Config (subset) of a `datasets` name, e.g. 'en'."
    ),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option(
        "--device-map",
        default=None,
        help="Spread a model too big for one GPU across devices (accelerate), e.g. 'auto'.",
    ),
    click.option(
        "--dtype",
        type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
        default="auto",
        show_default=True,
        help="Weights dtype ('auto': the checkpoint's own).",
    ),
    click.option(
        "--chat-template",
        is_flag=True,
        help="Wrap each sample as a user turn with the tokenizer's chat template.",
    ),
    click.option(
        "--padding-side",
        type=click.Choice(["left", "right"]),
        default=None,
        help="Pad on this side (default: the tokenizer's). Results do not depend on it.",
    ),
    click.option(
        "--trust-remote-code",
        is_flag=True,
        help="Allow the model's own Python code from the hub (off by default).",
    ),
)

#: The :class:`ModelOptions` fields the shared options set, named as the fields are.
SETTINGS = (
    "text_field",
    "split",
    "dataset_config",
    "device",
    "device_map",
    "dtype",
    "chat_template",
    "padding_side",
    "trust_remote_code",
)


def model_and_text_options(command: Callable) -> Callable:
    """Add the shared options to a click command."""
    for option in reversed(_SHARED):
        command = option(command)
    return command


def model_options(options: dict[str, Any], **fields: Any) -> ModelOptions:
    """The :class:`ModelOptions` of a command's parsed ``options``.

    The shared options and ``--model`` (without a trailing slash) come from
    ``options``; ``fields`` sets the rest (data, sample count, lengths), which
    each command declares with its own help text.
    """
    return ModelOptions(
        model=str(options["model"]).rstrip("/") or "/",
        **{name: options[name] for name in SETTINGS},
        **fields,
    )
