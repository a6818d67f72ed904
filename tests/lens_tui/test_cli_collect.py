"""`lens collect` / `lens index` as a user runs them: progress on stderr, one-line errors."""

from __future__ import annotations

import json
import warnings

import pytest

pytest.importorskip("torch")

from core.collect.partial import partial_dir  # noqa: E402
from core.formats.bundle import load_bundle  # noqa: E402
from tests.lens_tui.cli_helpers import assert_clean_error, lens  # noqa: E402
from tests.tiny_models import build_tiny_model, build_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_tiny_model("gpt_oss", tmp_path_factory.mktemp("gpt_oss"))


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    """A real transformers model with no MoE layer at all (Llama)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("llama")
    tokenizer = build_tokenizer(folder)
    config = AutoConfig.for_model(
        "llama",
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def test_collect_writes_a_bundle_and_reports_progress(model, tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("one sample\nanother, longer sample of text\nthird\n", encoding="utf-8")
    out = tmp_path / "b.safetensors"
    result = lens("collect", "-m", model, "-d", data, "-o", out, "-b", "2", "--no-energy")
    assert result.returncode == 0, result.stderr
    assert "collecting" in result.stderr and "tokens/s" in result.stderr
    assert f"wrote {out}" in result.stderr
    bundle = load_bundle(out)
    assert bundle.num_samples == 3 and not bundle.has("energy_sum")
    assert bundle.metadata["collect_command"].startswith("lens collect -m ")
    stats = json.loads(lens("stats", out, "--json").stdout)
    assert stats["bundle"]["samples"] == 3


@pytest.mark.parametrize(
    "setup,args,needles",
    [
        ("missing", [], ["missing.txt", "no such file"]),
        ("empty", [], ["empty file"]),
        ("blank", [], ["no usable samples"]),
        ("nofield", [], ["no field 'text'", "--text-field"]),
        ("ok", ["--max-length", "0"], ["--max-length", "must be at least 1"]),
        ("ok", ["--batch-size", "0"], ["--batch-size", "must be at least 1"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(model, tmp_path, setup, args, needles):
    files = {
        "missing": ("missing.txt", None),
        "empty": ("empty.txt", ""),
        "blank": ("blank.txt", "\n  \n"),
        "nofield": ("d.jsonl", '{"content": "x"}\n'),
        "ok": ("ok.txt", "fine text\n"),
    }
    name, content = files[setup]
    data = tmp_path / name
    if content is not None:
        data.write_text(content, encoding="utf-8")
    out = tmp_path / "b.safetensors"
    assert_clean_error(lens("collect", "-m", model, "-d", data, "-o", out, *args), *needles)
    assert not out.exists() and not partial_dir(out).exists()


def test_model_without_moe_layers(dense_model, tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("some text\n", encoding="utf-8")
    out = tmp_path / "b.safetensors"
    assert_clean_error(
        lens("collect", "-m", dense_model, "-d", data, "-o", out),
        "LlamaForCausalLM",
        "no MoE layers found",
    )
    assert not out.exists() and not partial_dir(out).exists()


def test_missing_model_folder(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("some text\n", encoding="utf-8")
    assert_clean_error(
        lens("collect", "-m", tmp_path / "nope", "-d", data, "-o", tmp_path / "b.safetensors"),
        "no such model folder",
    )


def test_help_teaches():
    text = lens("collect", "--help").stdout
    for needle in ("Examples", "--no-energy", "--keep-raw", "resume", "--chat-template"):
        assert needle in text
    assert "Examples" in lens("index", "--help").stdout


def test_several_data_sets_write_one_bundle_each(model, tmp_path):
    first, second = tmp_path / "news.txt", tmp_path / "code.jsonl"
    first.write_text("one\ntwo three\n", encoding="utf-8")
    second.write_text('{"text": "def f(): pass"}\n', encoding="utf-8")
    folder = tmp_path / "bundles"
    result = lens("collect", "-m", model, "-d", first, "-d", second, "-o", folder, "--no-energy")
    assert result.returncode == 0, result.stderr
    assert load_bundle(folder / "news.safetensors").num_samples == 2
    assert load_bundle(folder / "code.safetensors").dataset == "code"
    assert result.stderr.count(" MiB, in ") == 2  # one summary line per bundle
    assert_clean_error(
        lens("collect", "-m", model, "-d", first, "-d", second, "-o", tmp_path / "x.safetensors"),
        "--out is a folder",
    )
    assert_clean_error(
        lens(
            "collect", "-m", model, "-d", first, "-d", second, "-o", folder, "--dataset-name", "x"
        ),
        "--dataset-name names one data set",
    )
