"""A checkpoint's own Python code never runs unless --trust-remote-code is given.

transformers' default (``trust_remote_code=None``) asks on stdin; a headless
run would hang, and an interactive one would be one keystroke from running
downloaded code. Loading must pass ``False`` explicitly and refuse in one line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.errors import LensError
from core.model.options import ModelOptions
from tests.lens_tui.cli_helpers import ROOT

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


@pytest.mark.parametrize("command", ["collect", "evaluate"])
def test_remote_code_is_refused_in_one_line_without_prompting(remote_code_model, tmp_path, command):
    data = tmp_path / "d.txt"
    data.write_text("one sample\n", encoding="utf-8")
    args = [
        sys.executable,
        "-m",
        "lens_tui",
        command,
        "-m",
        str(remote_code_model),
        "-d",
        str(data),
    ]
    args += ["-o", str(tmp_path / ("b.safetensors" if command == "collect" else "e.json"))]
    result = subprocess.run(
        args, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "could not load the model" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (remote_code_model / "EXECUTED").exists()
