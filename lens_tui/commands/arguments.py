"""Option types that refuse nonsense instead of passing it on.

Click's ``float`` accepts ``nan`` and ``inf`` (a NaN threshold compares false
with everything, so ``--tau nan`` silently reported 0 % sparsity), and its
``int`` accepts ``-1`` where a count or a seed is meant. Every numeric option
of the ``lens`` commands takes one of these types, so a bad value is one line
(``error: Invalid value for '--tau': …``) before any work starts.
"""

from __future__ import annotations

import math

import click


class FiniteFloatRange(click.FloatRange):
    """A float in a range that is also finite (no ``nan``, ``inf``)."""

    name = "finite float range"

    def convert(self, value, param, ctx):  # type: ignore[override]
        number = click.types.FloatParamType.convert(self, value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


class Count(click.IntRange):
    """A whole number in ``[minimum, maximum]`` whose error says the bound in words."""

    name = "count"

    def convert(self, value, param, ctx):  # type: ignore[override]
        number = click.types.IntParamType.convert(self, value, param, ctx)
        if self.min is not None and number < self.min:
            self.fail(f"must be at least {self.min} (got {number})", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"must be at most {self.max:,} (got {number})", param, ctx)
        return number


def count(minimum: int = 1, maximum: int | None = None) -> Count:
    """A whole number of things (samples, experts, groups, a seed): at least ``minimum``."""
    return Count(min=minimum, max=maximum)


#: numpy seeds are non-negative (``default_rng(-1)`` raises deep inside numpy).
SEED = count(0)
#: Tokens per sample: beyond ten million no model has a context, so it is a typo.
MAX_LENGTH = count(1, 10_000_000)
#: Samples per forward pass.
BATCH_SIZE = count(1, 1_000_000)
