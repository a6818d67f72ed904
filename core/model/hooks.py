"""One set of forward hooks and patched forwards that is always removed as a whole.

Both :class:`~core.collect.capture.RouterCapture` (read-only statistics) and
:class:`~core.evaluate.masking.MaskedRouting` (masked routing) attach several
hooks per MoE layer and must leave the model exactly as they found it, even
when attaching fails half-way or the forward pass raises. The lifecycle lives
here once; each user only says what to attach.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any


class HookSet:
    """Hooks registered through it are removed by :meth:`close` (or leaving the ``with``).

    ::

        with HookSet() as hooks:
            hooks.install(lambda h: h.forward_hook(router, on_router))
            model(...)
        # every hook removed, every patched forward restored
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self._patched: list[Any] = []

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def install(self, attach: Callable[[HookSet], None]) -> None:
        """Run ``attach(self)``; if it raises part-way, remove what it registered, re-raise."""
        try:
            attach(self)
        except BaseException:
            self.close()
            raise

    def forward_hook(self, module: Any, hook: Callable, *, with_kwargs: bool = False) -> None:
        self._handles.append(module.register_forward_hook(hook, with_kwargs=with_kwargs))

    def forward_pre_hook(self, module: Any, hook: Callable, *, with_kwargs: bool = False) -> None:
        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=with_kwargs))

    def patch_forward(self, module: Any, forward: Callable) -> None:
        """Replace ``module.forward`` on the instance only; :meth:`close` restores the class's."""
        module.forward = MethodType(forward, module)
        self._patched.append(module)

    @property
    def active(self) -> int:
        """How many hooks and patches are in place (0 after :meth:`close`)."""
        return len(self._handles) + len(self._patched)

    def close(self) -> None:
        """Remove every hook and restore every patched forward; safe to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module in self._patched:
            module.__dict__.pop("forward", None)
        self._patched.clear()
