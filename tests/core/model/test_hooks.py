"""HookSet: whatever was attached is removed, on close, on an error while attaching, twice."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from core.model.hooks import HookSet  # noqa: E402


def _hook_count(module) -> int:
    return len(module._forward_hooks) + len(module._forward_pre_hooks)


def test_hooks_and_patched_forwards_are_removed_on_leaving():
    module = torch.nn.Linear(3, 3)
    x = torch.ones(1, 3)
    before = module(x)
    seen = []
    with HookSet() as hooks:
        hooks.install(lambda h: h.forward_hook(module, lambda m, a, o: seen.append("post")))
        hooks.forward_pre_hook(module, lambda m, a, k: seen.append("pre"), with_kwargs=True)
        hooks.patch_forward(module, lambda self, inp: torch.zeros(1, 3))
        assert hooks.active == 3
        assert torch.equal(module(x), torch.zeros(1, 3)) and seen == ["pre", "post"]
    assert hooks.active == 0 and _hook_count(module) == 0 and "forward" not in module.__dict__
    assert torch.equal(module(x), before)
    hooks.close()  # a second close is harmless


def test_a_failure_while_attaching_removes_what_was_attached():
    first, second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    def attach(hooks: HookSet) -> None:
        hooks.forward_hook(first, lambda m, a, o: None)
        hooks.patch_forward(second, lambda self, inp: inp)
        raise RuntimeError("third layer has no router")

    hooks = HookSet()
    with pytest.raises(RuntimeError, match="no router"):
        hooks.install(attach)
    assert _hook_count(first) == 0 and "forward" not in second.__dict__
