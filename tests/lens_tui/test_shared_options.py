"""The options collect and evaluate share map one to one onto ModelOptions' fields."""

from __future__ import annotations

import click

from core.model.options import OPTION_FIELDS, ModelOptions
from lens_tui.commands.collect import collect_command
from lens_tui.commands.evaluate import evaluate_command
from lens_tui.commands.options import SETTINGS, model_and_text_options, model_options


def test_every_shared_option_sets_a_model_options_field_of_its_name():
    command = model_and_text_options(click.command()(lambda **_: None))
    assert sorted(p.name for p in command.params) == sorted(SETTINGS)
    assert set(SETTINGS) <= set(OPTION_FIELDS)


def test_both_commands_declare_every_model_options_field():
    for command in (collect_command, evaluate_command):
        names = {p.name for p in command.params}
        # collect takes several data sets (-d ... -d ...), one run each
        assert set(OPTION_FIELDS) - {"data"} <= names, command.name
        assert {"data", "datas"} & names, command.name


def test_model_options_builds_the_object_and_strips_a_trailing_slash():
    parsed = {name: None for name in SETTINGS} | {"model": "./my-moe/", "dtype": "float32"}
    parsed |= {"text_field": "text", "split": "train", "device": "cpu", "chat_template": False}
    parsed |= {"trust_remote_code": False}
    options = model_options(parsed, data="d.txt", max_length=64)
    assert options == ModelOptions(
        model="./my-moe", data="d.txt", max_length=64, dtype="float32", device="cpu"
    )
