"""One options object: both configs hold it, validate through it, and record it flat."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from core.collect.config import CollectConfig
from core.errors import LensError
from core.evaluate.runner import EvaluateConfig
from core.model.batching import plan_batches
from core.model.labels import dataset_label
from core.model.options import OPTION_FIELDS, ModelOptions, split_settings


def test_neither_config_repeats_an_option_field():
    for config in (CollectConfig, EvaluateConfig):
        own = {f.name for f in fields(config)}
        assert "options" in own and not own & set(OPTION_FIELDS), config.__name__


def test_collect_args_stay_flat_with_every_setting():
    config = CollectConfig.from_settings(
        model="m", data="d.txt", out="o.safetensors", max_length=7, shard="0/2"
    )
    assert config.options == ModelOptions(model="m", data="d.txt", max_length=7)
    doc = config.to_json()
    expected = set(OPTION_FIELDS) | {f.name for f in fields(CollectConfig)} - {"options"}
    assert set(doc) == expected
    assert (doc["model"], doc["max_length"], doc["out"], doc["shard"]) == (
        "m",
        7,
        "o.safetensors",
        "0/2",
    )


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"max_length": 0}, "--max-length"),
        ({"batch_size": 0}, "--batch-size"),
        ({"num_samples": 0}, "--num-samples"),
        ({"padding_side": "up"}, "--padding-side"),
        ({"dtype": "int8"}, "--dtype"),
    ],
)
def test_bad_options_are_refused_by_both_configs(settings, message):
    with pytest.raises(LensError, match=message):
        CollectConfig.from_settings(model="m", data="d", out="o.safetensors", **settings)
    with pytest.raises(LensError, match=message):
        ModelOptions(model="m", data="d", **settings).validate()


def test_split_settings_separates_options_from_a_run_s_own_fields():
    options, rest = split_settings(
        {"model": "m", "data": "d", "masks": ["a.json"], "dtype": "float32"}
    )
    assert options == ModelOptions(model="m", data="d", dtype="float32")
    assert rest == {"masks": ["a.json"]}


def test_plan_batches_is_longest_first_ties_by_position():
    lengths = [3, 9, 3, 5, 9, 1]
    # by hand: 9 (1), 9 (4), 5 (3), 3 (0), 3 (2), 1 (5); index 5 is not usable here
    assert plan_batches([0, 1, 2, 3, 4], lengths, 2) == [[1, 4], [3, 0], [2]]


def test_dataset_label(tmp_path):
    data = tmp_path / "calib-zh.jsonl"
    data.write_text("{}", encoding="utf-8")
    assert dataset_label(ModelOptions(model="m", data=str(data))) == "calib-zh"
    assert dataset_label(ModelOptions(model="m", data=str(data), dataset_name="x")) == "x"
    missing = str(Path("allenai/c4"))
    assert (
        dataset_label(ModelOptions(model="m", data=missing, dataset_config="en")) == "allenai/c4:en"
    )
