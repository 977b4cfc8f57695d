"""Transactions for ``apply`` / ``load_adapter``: an error leaves the model exactly as it was.

::

    undo = Undo(model)
    try:
        ...  # wrap layers, freeze, register hooks, overwrite weights (registered in undo.values)
    except BaseException:
        undo.restore()
        raise
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Undo"]


class Undo:
    """Puts a model back exactly as it was when this was made, without copying its weights.

    Records, for every module, its attribute dict: submodules, parameters, buffers, hooks and
    plain attributes (containers copied shallowly, so wrapping a layer, adding an attribute or
    registering a hook is undone), and every parameter's ``requires_grad``. Values overwritten
    in place (``load_adapter`` into a backbone weight) are registered in ``values`` as
    ``(parameter, old value)`` by the code that overwrites them.
    """

    def __init__(self, model: nn.Module) -> None:
        self.modules = [(m, {k: (v, _contents(v)) for k, v in m.__dict__.items()})
                        for m in model.modules()]
        self.flags = [(p, p.requires_grad) for p in model.parameters()]
        self.values: list[tuple[Tensor, Tensor]] = []

    def restore(self) -> None:
        with torch.no_grad():
            for p, old in reversed(self.values):
                p.copy_(old)
        self.values = []
        for m, saved in self.modules:
            d = m.__dict__
            for k in [k for k in d if k not in saved]:
                del d[k]
            for k, (obj, contents) in saved.items():
                if contents is not None:
                    _refill(obj, contents)
                d[k] = obj
        for p, flag in self.flags:
            p.requires_grad_(flag)


_CONTAINERS = (dict, OrderedDict, list, set)  # exact types: what nn.Module keeps its state in


def _contents(v: object) -> list | None:
    if type(v) not in _CONTAINERS:
        return None  # anything else is restored by reference only
    return list(v.items()) if isinstance(v, dict) else list(v)  # type: ignore[union-attr]


def _refill(obj: Any, contents: list) -> None:
    if isinstance(obj, list):
        obj[:] = contents
    else:
        obj.clear()
        obj.update(contents)
