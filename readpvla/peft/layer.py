"""The shared wrapper: a module that keeps the original layer as ``base_layer`` and adds to its
output. READ and the Houlsby adapter are both of this shape (as in Hugging Face ``peft``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class WrapperLayer(nn.Module):
    """Runs ``base_layer`` and then :meth:`adapt` on its output.

    Attributes the backbone's own code reads on the original layer (T5 reads ``wo.weight``)
    are forwarded to ``base_layer``.
    """

    #: parameter-name prefix (inside this layer) that is *not* the adapter
    base_name = "base_layer"

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        out = self.base_layer(*args, **kwargs)
        return self.adapt(out)

    def adapt(self, o: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)


def out_features(layer: nn.Module, name: str) -> int:
    """The width d of a layer's output (what the adapter maps back to)."""
    for attr in ("out_features", "embed_dim", "hidden_size"):
        if isinstance(getattr(layer, attr, None), int):
            return getattr(layer, attr)
    weight = getattr(layer, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:
        return weight.shape[0]
    raise ValueError(
        f"cannot tell the output width of {name} ({type(layer).__name__}); "
        "target an nn.Linear (the FFN's output projection)"
    )


def reference_param(layer: nn.Module) -> Tensor | None:
    """A parameter of ``layer`` whose device and dtype the adapter should share."""
    return next(iter(layer.parameters()), None)


def factory_of(module: nn.Module) -> dict[str, Any]:
    """``{"device", "dtype"}`` of ``module``'s first parameter (``{}`` without parameters): new
    adapter weights are made to match the weights they sit beside."""
    ref = reference_param(module)
    return {"device": ref.device, "dtype": ref.dtype} if ref is not None else {}
