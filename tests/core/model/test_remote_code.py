"""A checkpoint's own Python code never runs unless --trust-remote-code is given.

transformers' default (``trust_remote_code=None``) asks on stdin; a headless
run would hang, and an interactive one would be one keystroke from running
downloaded code. Loading must pass ``False`` explicitly and refuse in one line.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from click.testing import CliRunner

from core.errors import LensError
from core.evaluate.runner import EvaluateConfig, run_evaluation
from core.model.options import ModelOptions
from lens_tui.cli import cli

pytest.importorskip("transformers")

EVIL = """
from pathlib import Path
Path(__file__).with_name("EXECUTED").write_text("remote code ran")
from transformers import PretrainedConfig
class EvilConfig(PretrainedConfig):
    model_type = "lens_evil"
"""


@pytest.fixture()
def remote_code_model(tmp_path):
    folder = tmp_path / "evil-moe"
    folder.mkdir()
    (folder / "evil.py").write_text(EVIL, encoding="utf-8")
    config = {
        "model_type": "lens_evil",
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"},
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_every_loader_gets_an_explicit_false(monkeypatch, remote_code_model):
    import transformers

    from core.model import loading

    seen = []

    def record(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code", "missing"))
        raise ValueError("stop here")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", record)
    options = ModelOptions(model=str(remote_code_model), data="d.txt", device="cpu")
    with pytest.raises(LensError):
        loading.load_model_config(options)
    options.trust_remote_code = True
    with pytest.raises(LensError):
        loading.load_model_config(options)
    assert seen == [False, True]
    assert loading.remote_code(ModelOptions(model="m", data="d")) == {"trust_remote_code": False}


def test_lens_collect_refuses_remote_code_in_one_line_without_prompting(
    remote_code_model, tmp_path
):
    data = tmp_path / "d.txt"
    data.write_text("one sample\n", encoding="utf-8")
    args = ["collect", "-m", str(remote_code_model), "-d", str(data)]
    args += ["-o", str(tmp_path / "b.safetensors")]
    result = CliRunner().invoke(cli, args, input="")  # stdin at EOF: a prompt could not wait
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "could not load the model" in lines[0], result.stderr
    assert not (remote_code_model / "EXECUTED").exists()


def test_evaluation_refuses_remote_code_without_reading_stdin(
    remote_code_model, tmp_path, monkeypatch
):
    data = tmp_path / "d.txt"
    data.write_text("one sample\n", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a prompt would hit EOF, not wait
    config = EvaluateConfig.from_settings(
        model=str(remote_code_model), data=str(data), device="cpu"
    )
    with pytest.raises(LensError, match="could not load the model") as caught:
        run_evaluation(config)
    assert "\n" not in str(caught.value)
    assert not (remote_code_model / "EXECUTED").exists()
