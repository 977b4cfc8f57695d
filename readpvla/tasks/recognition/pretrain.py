"""The recognition backbones: the video CLIPs pretrained contrastively on the rendered source
split by :mod:`readpvla.tasks.retrieval.pretrain` (one pretraining serves both tasks: a class is
recognised by video-text similarity to its prompt, so the same video-text space is what it
needs). The source split never shows the zero-shot classes (filling, emptying, blinking, passing
behind a bar), so zero-shot accuracy on those measures transfer to unseen actions."""

from ..retrieval.pretrain import (
    PRETRAIN,
    TEMPORAL,
    PretrainSettings,
    default_checkpoint,
    load,
    pretrain,
)

__all__ = ["PRETRAIN", "TEMPORAL", "PretrainSettings", "default_checkpoint", "load", "pretrain"]
