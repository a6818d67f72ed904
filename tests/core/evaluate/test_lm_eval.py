"""``lens evaluate --lm-eval`` on a tiny model with a local task (a task YAML over a JSONL file,
no hub): the original's score equals lm-eval's own ``simple_evaluate`` on the same model and
task, and a masked model's score equals that of the mask's pruned checkpoint."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")

from core.evaluate.runner import EvaluateConfig, run_evaluation  # noqa: E402
from core.formats.mask import Mask  # noqa: E402
from core.prune.surgery import prune_checkpoint  # noqa: E402

TASK = "lens_local_choice"
#: Prompts and their right continuation: a loglikelihood task, so the scores (perplexity of the
#: continuation, and whether it is the greedy one) move with any change to the model and a
#: mask that did nothing would show.
DOCS = [
    {"question": "The capital of France is", "choices": [" Paris", " Rome", " Oslo"], "answer": 0},
    {"question": "Two plus two is", "choices": [" five", " four", " three"], "answer": 1},
    {"question": "Water freezes at zero degrees", "choices": [" Kelvin", " Fahrenheit", " Celsius"], "answer": 2},
    {"question": "The opposite of hot is", "choices": [" cold", " warm", " loud"], "answer": 0},
    {"question": "A week has seven", "choices": [" years", " days", " hours"], "answer": 1},
    {"question": "Bees make", "choices": [" milk", " silk", " honey"], "answer": 2},
    {"question": "The sun rises in the", "choices": [" east", " west", " north"], "answer": 0},
    {"question": "Fish live in", "choices": [" trees", " water", " sand"], "answer": 1},
]  # fmt: skip


@pytest.fixture
def local_task(tmp_path) -> Path:
    """A folder holding the task YAML and its JSONL data (lm-eval's json builder, no hub)."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    (folder / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        f"  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: loglikelihood\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_target: "{{choices[answer]}}"\n'
        "metric_list:\n  - metric: perplexity\n    aggregation: perplexity\n"
        "    higher_is_better: false\n  - metric: acc\n    aggregation: mean\n"
        "    higher_is_better: true\n"
    )
    return folder


def _lm_eval_itself(model: Path, folder: Path) -> dict[str, float]:
    """lm-eval's own run, as its CLI would do it: ``--model hf --include_path``."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output = lm_eval.simple_evaluate(
            model=HFLM(pretrained=str(model), batch_size=4, device="cpu"),
            tasks=[TASK],
            task_manager=TaskManager(include_path=[str(folder)]),
        )
    return {k: float(v) for k, v in output["results"][TASK].items() if isinstance(v, float)}


def _ours(model: Path, folder: Path, data: Path, masks=()):
    config = EvaluateConfig.from_settings(
        model=str(model),
        data=str(data),
        masks=list(masks),
        device="cpu",
        batch_size=4,
        lm_eval_tasks=[TASK],
        lm_eval_include=[str(folder)],
        ci_replicates=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_evaluation(config)


def test_lm_eval_scores_equal_lm_eval_itself_and_the_pruned_checkpoint(
    tiny_model, text_file, local_task, tmp_path
):
    folder = tiny_model("qwen3_moe")
    mask = Mask(
        model=str(folder),
        num_experts=8,
        criterion="test",
        sources=[],
        layers=[[0, 1, 5], [2, 6, 7]],
    )
    result = _ours(folder, local_task, text_file, [mask])
    original = result.baseline["lm_eval"][TASK]
    masked = result.masks[0].extra["lm_eval"][TASK]
    reference = _lm_eval_itself(folder, local_task)
    assert original["perplexity,none"] == pytest.approx(reference["perplexity,none"], rel=1e-9)
    assert original["acc,none"] == reference["acc,none"]
    prune_checkpoint(folder, mask, tmp_path / "pruned")
    pruned = _lm_eval_itself(tmp_path / "pruned", local_task)
    # float32 forward passes of two different graphs (hooks vs sliced weights): equal to 1e-6.
    assert masked["perplexity,none"] == pytest.approx(pruned["perplexity,none"], rel=1e-6)
    assert masked["acc,none"] == pruned["acc,none"]
    # The mask changed the model: equality with the pruned checkpoint is not an accident.
    assert masked["perplexity,none"] != pytest.approx(original["perplexity,none"], rel=1e-4)
