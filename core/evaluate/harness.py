"""Optional: run EleutherAI's lm-evaluation-harness tasks on a masked model, in memory.

``lm-eval`` is not a dependency; :func:`run_lm_eval` imports it when asked and
refuses with one line when it is missing. The masked model is the loaded model
with :class:`~core.evaluate.masking.MaskedRouting` set to a mask, wrapped in
lm-eval's ``HFLM`` (which accepts a model instance), so no pruned checkpoint
is written. Not exercised by the tests (lm-eval downloads its task data from
the hub); the equivalent by hand on a pruned checkpoint is::

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
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` of lm-eval's ``simple_evaluate`` on ``model`` as it is now."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise LensError(
            "--lm-eval needs EleutherAI's lm-evaluation-harness: pip install lm-eval"
        ) from None
    wrapped = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    try:
        output = lm_eval.simple_evaluate(
            model=wrapped, tasks=list(tasks), limit=limit, num_fewshot=num_fewshot
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
