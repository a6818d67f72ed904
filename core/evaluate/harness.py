"""Optional: run EleutherAI's lm-evaluation-harness tasks on a masked model, in memory.

``lm-eval`` is not a dependency; :func:`run_lm_eval` imports it when asked and
refuses with one line when it is missing. The masked model is the loaded model
with :class:`~core.evaluate.masking.MaskedRouting` set to a mask, wrapped in
lm-eval's ``HFLM`` (which accepts a model instance), so no pruned checkpoint
is written. Tasks of your own (a task YAML over local data files, no hub) are
found through ``include`` folders, lm-eval's ``--include_path``; the tests run
one (tests/core/evaluate/test_lm_eval.py) against lm-eval's own
``simple_evaluate`` and against the pruned checkpoint. The equivalent by hand on
a pruned checkpoint is::

    lens prune --model M --mask c4-mass.json --out pruned/
    lm_eval --model hf --model_args pretrained=pruned/ --tasks mmlu --batch_size 8
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import LensError


def run_lm_eval(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    *,
    limit: float | None = None,
    batch_size: int = 8,
    num_fewshot: int | None = None,
    include: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` of lm-eval's ``simple_evaluate`` on ``model`` as it is now."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise LensError(
            "--lm-eval needs EleutherAI's lm-evaluation-harness: pip install lm-eval"
        ) from None
    wrapped = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    manager = TaskManager(include_path=[str(p) for p in include] or None)
    try:
        output = lm_eval.simple_evaluate(
            model=wrapped,
            tasks=list(tasks),
            limit=limit,
            num_fewshot=num_fewshot,
            task_manager=manager,
        )
    except (KeyError, ValueError) as exc:
        raise LensError(f"lm-eval could not run tasks {', '.join(tasks)}: {exc}") from None
    results = (output or {}).get("results", {})
    return {
        task: {
            key: float(value)
            for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        for task, metrics in results.items()
    }
