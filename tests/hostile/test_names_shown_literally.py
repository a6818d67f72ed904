"""Names from files are shown literally: rich markup and terminal escapes never take effect.

A bundle's ``dataset``/``model``, a file name, a mask's criterion and an
evaluation's mask names are whatever their writer put there. ``[/bold]`` used
to crash a command (rich MarkupError) and ``\\x1b[2J`` / OSC 52 went to the
terminal raw. Every command and the app's Predict view must print them as text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable

from core.formats.evaluation import read_evaluation
from core.formats.mask import Mask, write_mask
from lens_tui.app import build_app
from lens_tui.commands.evaluate import print_evaluation
from tests.conftest import make_bundle
from tests.hostile.conftest import ROOT, invoke
from tests.lens_tui.helpers import async_test

MARKUP = "[/bold][red]x"
ESCAPES = "\x1b[2J\x1b]52;c;ZXZpbA==\x07"
EVIL = MARKUP + ESCAPES


@pytest.fixture
def evil(tmp_path) -> Path:
    """Bundles, a mask and an evaluation whose names hold markup and escape sequences."""
    folder = tmp_path / "evil"
    folder.mkdir()
    for seed, name in ((1, "one[red]"), (2, "two[bold]")):
        make_bundle(folder / f"{name}.safetensors", layers=4, experts=32, top_k=4, seed=seed,
                    dataset=EVIL + name, model="moe" + EVIL)  # fmt: skip
    write_mask(
        tmp_path / "m[red].json",
        Mask(model="moe" + EVIL, num_experts=32, criterion="mass" + EVIL, sources=[EVIL],
             layers=[[0, 1, 2, 3]] * 4),
    )  # fmt: skip
    doc = json.loads((ROOT / "sample_stats" / "eval_wiki_en.json").read_text())
    doc["dataset"] = EVIL + "one[red]"
    doc["model"] = "moe" + EVIL
    for entry in doc["masks"]:
        entry["name"] = EVIL + entry["name"]
        entry["criterion"] = EVIL
    (tmp_path / "eval.json").write_text(json.dumps(doc))
    return tmp_path


def _assert_literal(result, *needles: str, escapes_shown: bool = True) -> None:
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    if escapes_shown:
        assert "\\x1b" in result.stdout  # the escape is shown, as text
    for needle in needles:
        assert needle in result.stdout, result.stdout


B1, B2 = "evil/one[red].safetensors", "evil/two[bold].safetensors"
COMMANDS = {
    "stats": ([B1], ["[/bold][red]x"]),
    "compare": ([B1, B2, "--r", "4"], ["[/bold][red]x", "two[bold]"]),
    "ablate": ([B1, "--r", "4", "--step", "4"], ["[/bold][red]x"]),
    "matrix": (["evil", "--r", "4"], ["one[red]", "two[bold]"]),
    "samples": ([B1, "--r", "4"], ["[/bold][red]x"]),
    "masks-compare": (["m[red].json", B1, "--r", "4", "--criteria", "mass"], ["[/bold][red]x"]),
    "predict-vs-actual": (["eval.json", B1, "--no-plot"], ["[/bold][red]x"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_prints_names_literally(evil, command):
    args, needles = COMMANDS[command]
    argv = [command, *(str(evil / a) if a.startswith(("evil", "m[", "eval")) else a for a in args)]
    _assert_literal(invoke(argv), *needles, escapes_shown=command != "matrix")  # file names


def test_mask_output_line_prints_names_literally(evil):
    out = evil / "out[red].json"
    result = invoke(["mask", str(evil / B1), "--r", "4", "-o", str(out)])
    _assert_literal(result, "out[red].json", "one[red]", escapes_shown=False)


def test_the_error_line_shows_escapes_as_text(evil, tmp_path):
    bad = tmp_path / "bad.safetensors"
    make_bundle(bad, layers=4, experts=32, top_k=4, seed=3, model="other" + ESCAPES)
    result = invoke(["compare", str(evil / B1), str(bad), "--r", "4"])
    assert (
        result.exit_code != 0
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    assert "\x1b" not in result.stderr and "\\x1b" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_print_evaluation_prints_names_literally(evil, capsys):
    print_evaluation(read_evaluation(evil / "eval.json"))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "[/bold][red]x" in out


@async_test
async def test_the_predict_view_shows_names_literally(evil):
    shutil.copyfile(evil / "eval.json", evil / "evil" / "eval.json")
    app = build_app([evil / "evil", evil / "m[red].json"])
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        table = app.query_one("#predict-table", DataTable)
        cells = [str(c) for c in table.get_row_at(0)]
        assert any("[/bold][red]x" in c for c in cells), cells
        assert not any("\x1b" in c for c in cells)
        assert app.is_running
