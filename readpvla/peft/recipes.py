"""Where the feed-forward layers live, per architecture.

A recipe is a handful of regular expressions over module names, *relative to the module that
owns the recipe*, matched with ``re.fullmatch``:

- ``ffn``: the last linear map of each block's feed-forward network — READ and the Houlsby
  adapter wrap it, so they act on the FFN output O before the block's residual + LayerNorm
  (paper Eq. 5-6);
- ``attn``: the attention output projection (the Houlsby adapter's second site);
- ``proj``: the model's last linear projection (the "Proj" baseline);
- ``stacks``: the encoder / decoder modules whose ``forward`` receives the ``attention_mask`` of
  their own tokens; hooks there tell READ where the padding is;
- ``pooled``: modules whose output is one vector per item (``[B, d]``, no token axis: poolers,
  projections of a pooled vector). READ refuses them: its recurrence runs along dim -2, which
  there is the batch.

Recipes come from a class attribute ``readpvla_recipe`` (our own backbones and wrappers declare
one) or, for ``transformers`` models, from ``config.model_type``. A model may contain several
recipe owners (a VG-BART wrapper holds a BART); their matches are merged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

_HEAD = r"(.*\.)?classification_head(\..+)?"  # sentence-classification heads (pooled input)
_BERT = {
    "ffn": r"(.*\.)?encoder\.layer\.\d+\.output\.dense",
    "attn": r"(.*\.)?encoder\.layer\.\d+\.attention\.output\.dense",
    "stacks": r"",
    "pooled": rf"(.*\.)?pooler(\..+)?|{_HEAD}",
}
_BART = {
    "ffn": r"(.*\.)?layers\.\d+\.fc2",
    "attn": r"(.*\.)?layers\.\d+\.self_attn\.out_proj",
    "proj": r"lm_head",
    "stacks": r"(.*\.)?(encoder|decoder)",
    "pooled": _HEAD,
}
_T5 = {
    "ffn": r"(.*\.)?block\.\d+\.layer\.\d+\.DenseReluDense\.wo",
    "attn": r"(.*\.)?block\.\d+\.layer\.0\.SelfAttention\.o",
    "proj": r"lm_head",
    "stacks": r"(.*\.)?(encoder|decoder)",
    "pooled": _HEAD,
}
_CLIP = {
    "ffn": r"(.*\.)?layers\.\d+\.mlp\.fc2",
    "attn": r"(.*\.)?layers\.\d+\.self_attn\.out_proj",
    "stacks": r"(.*\.)?text_model",
    # the vision tower's post_layernorm and both projections act on the pooled vector
    "pooled": r"(.*\.)?(post_layernorm|text_projection|visual_projection)",
}

#: ``config.model_type`` -> recipe, for ``transformers`` models.
HF_RECIPES: dict[str, dict[str, str]] = {
    "bert": _BERT,
    "roberta": _BERT,
    "xlm-roberta": _BERT,
    "electra": _BERT,
    "bart": _BART,
    "mbart": _BART,
    "t5": _T5,
    "mt5": _T5,
    "clip": {**_CLIP, "proj": r"(text|visual)_projection"},
    "clip_text_model": {**_CLIP, "stacks": r"(.*\.)?text_model|"},
    "clip_vision_model": {k: v for k, v in _CLIP.items() if k != "stacks"},
    # a CLIP-style pair of towers (each found by its own recipe) and its two projections
    "vision-text-dual-encoder": {"proj": r"(text|visual)_projection",
                                 "pooled": r"(text|visual)_projection"},
}

RECIPE_KEYS = ("ffn", "attn", "proj", "stacks", "pooled")

#: module classes whose outputs have no token axis, by name ending (transformers' BertPooler,
#: BartClassificationHead, RobertaClassificationHead, ...), and module names that say so
_POOLED_CLASSES = ("Pooler", "ClassificationHead")
_POOLED_NAMES = ("pooler", "classification_head")


def recipe_of(module: nn.Module) -> dict[str, str] | None:
    """The recipe a module declares itself, or the one for its ``transformers`` model type."""
    own = getattr(type(module), "readpvla_recipe", None)
    if own is not None:
        return dict(own)
    config = getattr(module, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is not None and hasattr(module, "base_model_prefix"):
        return HF_RECIPES.get(model_type)
    return None


def _unwrapped(names: Iterable[str]) -> list[str]:
    # our wrapper layers keep the original module as ``base_layer``; match the original names
    return [n for n in names if ".base_layer" not in f".{n}" and not n.endswith("base_layer")]


def find_modules(model: nn.Module, kind: str) -> list[str]:
    """Names of the modules of ``model`` that the recipes name as ``kind`` (sorted by position).

    Raises:
        ValueError: no recipe in the model says where its ``kind`` modules are.
    """
    if kind not in RECIPE_KEYS:
        raise ValueError(f"unknown recipe key {kind!r}; expected one of {RECIPE_KEYS}")
    names = _unwrapped(n for n, _ in model.named_modules())
    found: list[str] = []
    seen_recipe = False
    for owner, module in model.named_modules():
        recipe = recipe_of(module)
        if recipe is None or kind not in recipe:
            continue
        seen_recipe = True
        pattern = re.compile(recipe[kind])
        prefix = f"{owner}." if owner else ""
        for n in names:
            if owner and n != owner and not n.startswith(prefix):
                continue
            rel = n[len(prefix):] if owner and n != owner else ("" if n == owner else n)
            if pattern.fullmatch(rel) and n not in found:
                found.append(n)
    if not seen_recipe:
        raise ValueError(
            f"readpvla does not know where the {kind!r} layers of {type(model).__name__} are: "
            f"no recipe for this architecture. Pass target='<regex of module names>' "
            f"(or a list of names), or give the class a `readpvla_recipe` dict."
        )
    order = {n: i for i, n in enumerate(names)}
    return sorted(found, key=order.__getitem__)


def match_target(model: nn.Module, target: str | list[str]) -> list[str]:
    """Module names matched by a user target: a regex (``re.fullmatch`` on the full name) or a
    list of names (exact name or dotted suffix)."""
    names = _unwrapped(n for n, _ in model.named_modules())
    if isinstance(target, str):
        try:
            pattern = re.compile(target)
        except re.error as e:
            raise ValueError(f"target {target!r} is not a valid regex: {e}") from e
        return [n for n in names if n and pattern.fullmatch(n)]
    return [n for n in names if n and any(n == t or n.endswith(f".{t}") for t in target)]


def resolve_targets(
    model: nn.Module, target: str | list[str] | None, kind: str = "ffn", what: str = "READ"
) -> list[str]:
    """The module names a method wraps: the user's ``target`` or else the recipe's ``kind``."""
    names = find_modules(model, kind) if target is None else match_target(model, target)
    if not names:
        where = f"target={target!r}" if target is not None else f"the {kind!r} recipe"
        raise ValueError(f"{what}: {where} matched no module of {type(model).__name__}")
    return names


def no_token_axis(model: nn.Module, names: list[str]) -> list[str]:
    """Those of ``names`` whose output is one vector per item (``[B, d]``), as far as the model
    tells before running: the recipes' ``pooled`` modules, modules named ``pooler`` /
    ``classification_head`` or inside one, and modules inside a ``*Pooler`` or
    ``*ClassificationHead`` class.

    A module none of these name can still output ``[B, d]``; READ checks again at the first
    forward (:meth:`readpvla.peft.READLayer.adapt`).
    """
    try:
        declared = set(find_modules(model, "pooled"))
    except ValueError:
        declared = set()  # no recipe names pooled modules
    modules = dict(model.named_modules())
    found = []
    for name in names:
        parts = name.split(".")
        owners = [modules.get(".".join(parts[:i])) for i in range(1, len(parts) + 1)]
        if (name in declared or any(p in _POOLED_NAMES for p in parts)
                or any(type(m).__name__.endswith(_POOLED_CLASSES) for m in owners if m is not None)):
            found.append(name)
    return found


def block_lists(model: nn.Module) -> dict[str, list[str]]:
    """The transformer block lists of ``model``: ``{ModuleList name: [block names]}``.

    A block list is the nearest ``nn.ModuleList`` above the FFN layers whose every element holds
    one of them (the encoder's layers, the decoder's layers, ...).
    """
    ffn = find_modules(model, "ffn")
    modules = dict(model.named_modules())
    lists: dict[str, list[str]] = {}
    for name in ffn:
        parts = name.split(".")
        for i in range(len(parts) - 1, 0, -1):  # numeric components, nearest first
            if not parts[i].isdigit():
                continue
            parent = ".".join(parts[:i])
            container = modules.get(parent)
            if not isinstance(container, nn.ModuleList):
                continue
            elems = [f"{parent}.{j}" for j in range(len(container))]
            if all(any(f.startswith(e + ".") for f in ffn) for e in elems):
                lists[parent] = elems
                break
    return lists
