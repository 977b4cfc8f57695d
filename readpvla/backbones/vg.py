"""Vision-guided BART and T5 (VG-BART / VG-T5, Yu et al. 2021) over ``transformers``' models.

The text encoder-decoder stays ``transformers``' own ``BartForConditionalGeneration`` /
``T5ForConditionalGeneration`` (held as ``self.model``); the wrapper adds the vision guidance:

1. clip features ``X_V [B, T, D_v]`` are projected and given their temporal position,
   ``H_V = LN(X_V W_v + b_v + PE)``                                                ``[B, T, d]``;
2. after encoder layer ``f`` (``fusion_layer``) the transcript states attend to them,
   ``Z = MHA(Q = H_L, K = V = H_V) W_o`` and a forget gate mixes them in,
   ``G = sigmoid([H_L ; Z] W_g + b_g)``, ``H_L <- H_L + G * Z``
   (dot-product attention with forget gate, the best VG-BART variant; Yu et al. put it after
   the last encoder layer, our default);
3. the decoder is unchanged: it cross-attends to the fused encoder output and writes the summary.

The fusion runs as a forward hook on encoder layer ``f``, so the encoder itself is called as
``transformers`` calls it (``attention_mask=`` keyword: READ layers there see the padding).
``forward`` also returns the video tokens ``h_v`` and the transcript tokens ``h_l`` at the fusion
layer (before the video is mixed in) with their masks, for the PVLA loss, and the transcript
states after every encoder layer (``h_l_layers``) for a loss at all blocks.

References:
    Yu, Dai, Liu, Fung. Vision Guided Generative Pre-trained Language Models for Multimodal
    Abstractive Summarization. EMNLP 2021.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    PretrainedConfig,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.modeling_outputs import BaseModelOutput

from readpvla.backbones.layers import MultiHeadAttention, sinusoidal_positions

__all__ = ["CrossModalFusion", "VGBart", "VGOutput", "VGT5", "VisionGuidedSeq2Seq", "load_vg",
           "sinusoid", "tokenizer_fingerprint"]

CHECKPOINT_FORMAT = "readpvla-vg/1"
WEIGHTS_NAME, CONFIG_NAME = "model.safetensors", "config.json"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of a tokenizer's vocabulary (token -> id), for ``tokenizers`` or ``transformers``
    tokenizers alike: two tokenizers with the same fingerprint map text to the same ids."""
    vocab = tokenizer.get_vocab()
    return hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()


def _vocab_size(tokenizer: Any) -> int:
    return tokenizer.get_vocab_size() if hasattr(tokenizer, "get_vocab_size") else len(tokenizer)


def sinusoid(n: int, d: int) -> Tensor:
    """Sinusoidal positions ``PE[t, 2i] = sin(t / 10000^(2i/d))``, ``PE[t, 2i+1] = cos(...)``
    (Vaswani et al. 2017), ``[n, d]``: the clip order, with no parameter to train. The same
    function as the TLG backbones' :func:`readpvla.backbones.layers.sinusoidal_positions`."""
    return sinusoidal_positions(n, d)


class CrossModalFusion(MultiHeadAttention):
    """Dot-product attention with forget gate (Yu et al. 2021, Sec. 3.2).

    ``Z = softmax(Q K^T / sqrt(d_h)) V W_o`` per head, with ``Q = H_L W_q``, ``K = H_V W_k``,
    ``V = H_V W_v``; ``G = sigmoid([H_L ; Z] W_g + b_g)``; returns ``H_L + G * Z``.

    The attention is the shared :class:`~readpvla.backbones.layers.MultiHeadAttention` (its
    :meth:`~readpvla.backbones.layers.MultiHeadAttention.attend`, output projection named
    ``o_proj``, so the parameters stay ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``); the
    forget gate ``gate`` is this class's own.

    Shapes: ``h_l [B, N_L, d]``, ``h_v [B, N_V, d]``, ``mask_v`` bool ``[B, N_V]`` (True = real
    clip, at least one per row); returns ``[B, N_L, d]``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__(d_model, n_heads, dropout, out_name="o_proj")
        self.gate = nn.Linear(2 * d_model, d_model)

    def forward(self, h_l: Tensor, h_v: Tensor, mask_v: Tensor) -> Tensor:  # type: ignore[override]
        z = self.attend(h_l, h_v, key_mask=mask_v)  # (B, N_L, d)
        g = torch.sigmoid(self.gate(torch.cat([h_l, z], dim=-1)))  # (B, N_L, d) forget gate
        return h_l + g * z


@dataclass
class VGOutput:
    """What :meth:`VisionGuidedSeq2Seq.forward` returns.

    ``loss`` (token cross-entropy, when ``labels`` are given), ``logits [B, S, V]``;
    ``h_v [B, N_V, d]`` the projected clips and ``h_l [B, N_L, d]`` the transcript tokens at the
    fusion layer (before fusion), ``mask_v`` / ``mask_l`` bool (True = real); ``h_l_layers`` the
    transcript tokens after each encoder layer (fused from the fusion layer on). Prompt tokens,
    if any, are left out of ``h_*`` and the masks.
    """

    loss: Tensor | None
    logits: Tensor
    h_v: Tensor
    h_l: Tensor
    mask_v: Tensor
    mask_l: Tensor
    h_l_layers: tuple[Tensor, ...]
    encoder_last_hidden_state: Tensor


@dataclass
class _Encoded:
    encoder_outputs: BaseModelOutput
    attention_mask: Tensor  # (B, P + N_L), prompts included
    h_v: Tensor
    mask_v: Tensor
    h_l: Tensor
    mask_l: Tensor
    h_l_layers: tuple[Tensor, ...]


class _EncoderTap:
    """Forward hook on one encoder layer: records the transcript states and, at the fusion
    layer, mixes the video in. A callable object holding its owner, so ``copy.deepcopy`` of the
    wrapper rebinds it to the copy."""

    def __init__(self, owner: VisionGuidedSeq2Seq, index: int) -> None:
        self.owner, self.index = owner, index

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        ctx = self.owner._ctx
        if ctx is None:  # the encoder was called on its own: text only
            return None
        h = output[0] if isinstance(output, tuple) else output  # (B, P + N_L, d)
        p = ctx["n_prompt"]
        if self.index == self.owner.fusion_layer:
            ctx["h_l"] = h[:, p:]
            h = self.owner.fusion(h, ctx["h_v_full"], ctx["mask_v_full"])
            output = (h, *output[1:]) if isinstance(output, tuple) else h
        ctx["layers"].append(h[:, p:])
        return output


class VisionGuidedSeq2Seq(nn.Module):
    """Common code of :class:`VGBart` and :class:`VGT5` (see the module docstring).

    Args:
        model: a ``BartForConditionalGeneration`` / ``T5ForConditionalGeneration``.
        video_dim: ``D_v``, size of one clip feature.
        fusion_layer: index of the encoder layer after which the video is fused (negative
            counts from the end; default the last, as in VG-BART).
        fusion_heads: heads of the cross-modal attention (default: the encoder's).
        max_clips: the longest clip sequence the positional table covers.
    """

    hf_class: ClassVar[type[PreTrainedModel]]
    config_class: ClassVar[type[PretrainedConfig]]
    #: for readpvla.peft: the "Proj" baseline trains the last linear projection (the LM head;
    #: in BART it is tied to the token embeddings, as in the paper's 38.6M for VG-BART).
    readpvla_recipe: ClassVar[dict[str, str]] = {"proj": r"model\.lm_head"}

    def __init__(self, model: PreTrainedModel, video_dim: int, fusion_layer: int = -1,
                 fusion_heads: int | None = None, max_clips: int = 512) -> None:
        super().__init__()
        if not isinstance(model, self.hf_class):
            raise TypeError(f"{type(self).__name__} wraps a {self.hf_class.__name__}, "
                            f"got {type(model).__name__}")
        for name, v in (("video_dim", video_dim), ("max_clips", max_clips)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.model = model
        layers = self.encoder_layers()
        n = len(layers)
        if isinstance(fusion_layer, bool) or not isinstance(fusion_layer, int) \
                or not -n <= fusion_layer < n:
            raise ValueError(f"fusion_layer must be an int in [{-n}, {n - 1}] "
                             f"(the encoder has {n} layers), got {fusion_layer!r}")
        d = model.config.d_model
        self.video_dim, self.fusion_layer, self.max_clips = video_dim, fusion_layer % n, max_clips
        self.fusion_heads = fusion_heads or self._encoder_heads()
        self.video_proj = nn.Linear(video_dim, d)  # (B, T, D_v) -> (B, T, d)
        self.video_norm = nn.LayerNorm(d)
        self.fusion = CrossModalFusion(d, self.fusion_heads, self._dropout())
        self.register_buffer("video_pos", sinusoid(max_clips, d), persistent=False)
        self._ctx: dict[str, Any] | None = None
        for i, layer in enumerate(layers):
            layer.register_forward_hook(_EncoderTap(self, i))

    # -- architecture-specific bits ------------------------------------------------------------
    def encoder_layers(self) -> nn.ModuleList:
        """The encoder's block list (``layers`` in BART, ``block`` in T5)."""
        enc = self.model.get_encoder()
        return enc.layers if hasattr(enc, "layers") else enc.block

    def _encoder_heads(self) -> int:
        c = self.model.config
        return getattr(c, "encoder_attention_heads", None) or c.num_heads

    def _dropout(self) -> float:
        c = self.model.config
        return float(getattr(c, "dropout", getattr(c, "dropout_rate", 0.0)) or 0.0)

    @property
    def d_model(self) -> int:
        """Hidden width d of the text transformer."""
        return int(self.model.config.d_model)

    def readpvla_prompt_slots(self) -> dict[str, int]:
        """Prompt tuning protocol: learnable tokens go before the video and the transcript."""
        return {"video": self.d_model, "text": self.d_model}

    # -- encoding -----------------------------------------------------------------------------
    def _check(self, input_ids: Tensor, attention_mask: Tensor | None, video: Tensor,
               video_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.dtype.is_floating_point:
            raise ValueError(f"input_ids must be an integer [B, L] tensor, got {_desc(input_ids)}")
        b, n_l = input_ids.shape
        if int(input_ids.max()) >= self.model.config.vocab_size or int(input_ids.min()) < 0:
            raise ValueError(f"input_ids hold ids outside [0, {self.model.config.vocab_size}) "
                             "(the model's vocabulary): tokenizer and checkpoint do not match")
        if not isinstance(video, Tensor) or video.dim() != 3 or not video.dtype.is_floating_point:
            raise ValueError(f"video must be a float [B, T, D_v] tensor, got {_desc(video)}")
        if video.shape[0] != b or video.shape[2] != self.video_dim:
            raise ValueError(f"video must be [B={b}, T, D_v={self.video_dim}], got {tuple(video.shape)}")
        if video.shape[1] > self.max_clips:
            raise ValueError(f"{video.shape[1]} clips exceed max_clips={self.max_clips}")
        if not torch.isfinite(video).all():
            raise ValueError("video features hold NaN or inf")
        mask_l = torch.ones(b, n_l, dtype=torch.bool, device=input_ids.device) \
            if attention_mask is None else _bool_mask(attention_mask, (b, n_l), "attention_mask")
        mask_v = torch.ones(video.shape[:2], dtype=torch.bool, device=video.device) \
            if video_mask is None else _bool_mask(video_mask, tuple(video.shape[:2]), "video_mask")
        if not mask_v.any(1).all():
            raise ValueError("every sample needs at least one real clip (a video_mask row is all False)")
        if not mask_l.any(1).all():
            raise ValueError("every sample needs at least one real token (an attention_mask row is all 0)")
        return mask_l, mask_v

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None, video: Tensor,
               video_mask: Tensor | None = None) -> _Encoded:
        """Run the vision-guided encoder (prompt tokens, if set, prepended to both inputs)."""
        mask_l, mask_v = self._check(input_ids, attention_mask, video, video_mask)
        b, t = video.shape[:2]
        h_v = self.video_norm(self.video_proj(video) + self.video_pos[:t])  # (B, T, d)
        embeds = self.model.get_encoder().embed_tokens(input_ids)  # (B, N_L, d)
        h_v_full, mask_v_full, mask_full, n_prompt = h_v, mask_v, mask_l, 0
        prompts = getattr(self, "readpvla_prompts", None)
        if prompts is not None:
            p_t = prompts["text"].to(embeds.dtype)[None].expand(b, -1, -1)  # (B, P, d)
            p_v = prompts["video"].to(h_v.dtype)[None].expand(b, -1, -1)  # (B, P_v, d)
            n_prompt = p_t.shape[1]
            embeds = torch.cat([p_t, embeds], dim=1)
            mask_full = torch.cat([mask_l.new_ones(b, n_prompt), mask_l], dim=1)
            h_v_full = torch.cat([p_v, h_v], dim=1)
            mask_v_full = torch.cat([mask_v.new_ones(b, p_v.shape[1]), mask_v], dim=1)
        self._ctx = {"n_prompt": n_prompt, "h_v_full": h_v_full, "mask_v_full": mask_v_full,
                     "layers": []}
        try:
            enc = self.model.get_encoder()(inputs_embeds=embeds, attention_mask=mask_full.long())
            ctx = self._ctx
        finally:
            self._ctx = None
        return _Encoded(BaseModelOutput(last_hidden_state=enc.last_hidden_state), mask_full.long(),
                        h_v, mask_v, ctx["h_l"], mask_l, tuple(ctx["layers"]))

    # -- training / inference -----------------------------------------------------------------
    def forward(self, input_ids: Tensor, attention_mask: Tensor | None, video: Tensor,
                video_mask: Tensor | None = None, labels: Tensor | None = None,
                decoder_input_ids: Tensor | None = None,
                decoder_attention_mask: Tensor | None = None) -> VGOutput:
        """Teacher-forced pass.

        Args:
            input_ids: transcript ids ``[B, N_L]``; attention_mask: 1/True = real ``[B, N_L]``.
            video: clip features ``[B, T, D_v]``; video_mask: bool ``[B, T]`` (None: all real).
            labels: summary ids ``[B, S]``, -100 where padded (decoder inputs are the labels
                shifted right); or give ``decoder_input_ids`` (+ ``decoder_attention_mask``).

        Returns:
            :class:`VGOutput` (``loss`` is None without labels).
        """
        if labels is None and decoder_input_ids is None:
            raise ValueError("forward needs labels or decoder_input_ids")
        enc = self.encode(input_ids, attention_mask, video, video_mask)
        if labels is not None and decoder_input_ids is None and decoder_attention_mask is None:
            real = labels != -100  # decoder input t is real iff label t-1 is (t = 0: start token)
            decoder_attention_mask = torch.cat([torch.ones_like(real[:, :1]), real[:, :-1]], 1).long()
        out = self.model(encoder_outputs=enc.encoder_outputs, attention_mask=enc.attention_mask,
                         labels=labels, decoder_input_ids=decoder_input_ids,
                         decoder_attention_mask=decoder_attention_mask, use_cache=False)
        return VGOutput(out.loss, out.logits, enc.h_v, enc.h_l, enc.mask_v, enc.mask_l,
                        enc.h_l_layers, enc.encoder_outputs.last_hidden_state)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None, video: Tensor,
                 video_mask: Tensor | None = None, num_beams: int = 4, max_new_tokens: int = 64,
                 **kwargs: Any) -> Tensor:
        """Write summaries with ``transformers``' ``generate`` (beam search by default).

        The encoder runs once here; the decoder runs without a KV cache when a READ layer needs
        the whole prefix (:func:`readpvla.peft.requires_full_sequence`), so each step sees the
        same recurrence as a teacher-forced pass. Returns token ids ``[B, S]`` (BART's start
        with its decoder start token ``</s>``, T5's with ``<pad>``).
        """
        was_training = self.training
        self.eval()
        try:
            enc = self.encode(input_ids, attention_mask, video, video_mask)
            kwargs.setdefault("use_cache", not _requires_full_sequence(self))
            return self.model.generate(encoder_outputs=enc.encoder_outputs,
                                       attention_mask=enc.attention_mask, num_beams=num_beams,
                                       max_new_tokens=max_new_tokens, **kwargs)
        finally:
            self.train(was_training)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls, vocab_size: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                    ffn_dim: int = 256, dropout: float = 0.1, max_positions: int = 256,
                    pad_id: int = 0, bos_id: int = 1, eos_id: int = 2) -> PretrainedConfig:
        """A small local config (nothing is downloaded)."""
        raise NotImplementedError

    @classmethod
    def tiny(cls, vocab_size: int, video_dim: int, fusion_layer: int = -1, seed: int | None = 0,
             **config_kwargs: Any) -> VisionGuidedSeq2Seq:
        """A freshly initialised small model (see :meth:`tiny_config` for the sizes)."""
        if seed is not None:
            torch.manual_seed(seed)
        model = cls.hf_class(cls.tiny_config(vocab_size, **config_kwargs))
        return cls(model, video_dim=video_dim, fusion_layer=fusion_layer)

    @classmethod
    def from_pretrained(cls, name: str, video_dim: int, fusion_layer: int = -1,
                        fusion_heads: int | None = None, **hf_kwargs: Any) -> VisionGuidedSeq2Seq:
        """Wrap a Hub checkpoint (e.g. ``"facebook/bart-base"``, ``"t5-small"``; needs network
        or the Hub cache). The video projection and fusion start untrained."""
        model = cls.hf_class.from_pretrained(name, **hf_kwargs)
        return cls(model, video_dim=video_dim, fusion_layer=fusion_layer, fusion_heads=fusion_heads)

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path, tokenizer: Any = None,
                        extra: dict[str, Any] | None = None) -> Path:
        """Write ``path/model.safetensors`` (all weights) and ``path/config.json`` (the
        ``transformers`` config, the fusion settings and the tokenizer's fingerprint)."""
        from safetensors.torch import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = {"format": CHECKPOINT_FORMAT, "architecture": type(self).__name__,
               "video_dim": self.video_dim, "fusion_layer": self.fusion_layer,
               "fusion_heads": self.fusion_heads, "max_clips": self.max_clips,
               "hf_config": self.model.config.to_dict(),
               "tokenizer": None if tokenizer is None else {
                   "vocab_size": _vocab_size(tokenizer),
                   "fingerprint": tokenizer_fingerprint(tokenizer)},
               **(extra or {})}
        save_model(self, str(path / WEIGHTS_NAME))
        (path / CONFIG_NAME).write_text(json.dumps(cfg, indent=1, default=str))
        return path

    @classmethod
    def from_checkpoint(cls, path: str | Path, tokenizer: Any = None) -> VisionGuidedSeq2Seq:
        """Load a :meth:`save_checkpoint` folder (``cls`` may be the base class: it then builds
        whichever architecture the checkpoint holds).

        Raises:
            FileNotFoundError: missing files.
            ValueError: not a readpvla VG checkpoint, another architecture than ``cls``,
                weights that do not fit the config, or a ``tokenizer`` whose vocabulary differs
                from the one the checkpoint was trained with.
        """
        from safetensors import safe_open
        from safetensors.torch import load_model

        path = Path(path)
        for f in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / f).is_file():
                raise FileNotFoundError(f"{path / f} not found (not a VG checkpoint folder?)")
        try:
            cfg = json.loads((path / CONFIG_NAME).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path / CONFIG_NAME}: not valid JSON ({e.msg})") from None
        if not isinstance(cfg, dict) or cfg.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path / CONFIG_NAME}: not a {CHECKPOINT_FORMAT} checkpoint config")
        arch = _ARCHS.get(cfg.get("architecture"))
        if arch is None:
            raise ValueError(f"{path}: unknown architecture {cfg.get('architecture')!r}; "
                             f"expected one of {sorted(_ARCHS)}")
        if cls is not VisionGuidedSeq2Seq and arch is not cls:
            raise ValueError(f"{path} holds a {arch.__name__}, not a {cls.__name__}; "
                             f"load it with {arch.__name__}.from_checkpoint")
        if tokenizer is not None:
            _check_tokenizer(cfg, tokenizer, path)
        hf_config = arch.config_class.from_dict(cfg["hf_config"])
        model = arch(arch.hf_class(hf_config), video_dim=cfg["video_dim"],
                     fusion_layer=cfg["fusion_layer"], fusion_heads=cfg["fusion_heads"],
                     max_clips=cfg.get("max_clips", 512))
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        with safe_open(str(path / WEIGHTS_NAME), "pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        bad = [f"{k}: file {stored[k]} vs config {expected[k]}" for k in stored
               if k in expected and stored[k] != expected[k]]
        unknown = sorted(set(stored) - set(expected))
        if bad or unknown:
            raise ValueError(f"{path}: weights do not match its config.json "
                             f"(shape mismatches {bad[:5]}, unexpected tensors {unknown[:5]})")
        missing, unexpected = load_model(model, str(path / WEIGHTS_NAME), strict=False)
        missing = [k for k in missing if k not in _tied_names(model)]
        if missing:
            raise ValueError(f"{path}: tensors missing from the weights file: {missing[:5]}")
        model.checkpoint_config = cfg
        return model


def _tied_names(model: nn.Module) -> set[str]:
    seen: dict[int, str] = {}
    tied = set()
    for name, t in model.state_dict(keep_vars=True).items():
        key = t.data_ptr()
        if key in seen:
            tied |= {name, seen[key]}
        seen[key] = name
    return tied


def _check_tokenizer(cfg: dict[str, Any], tokenizer: Any, path: Path) -> None:
    info = cfg.get("tokenizer") or {}
    n_tok, n_model = _vocab_size(tokenizer), cfg["hf_config"].get("vocab_size")
    if info.get("vocab_size") is not None and n_tok != info["vocab_size"]:
        raise ValueError(f"tokenizer mismatch: the tokenizer has {n_tok} tokens but {path} was "
                         f"trained with a {info['vocab_size']}-token tokenizer")
    if n_model is not None and n_tok > n_model:
        raise ValueError(f"tokenizer mismatch: {n_tok} tokens do not fit the checkpoint's "
                         f"{n_model}-row embedding ({path})")
    if info.get("fingerprint") and tokenizer_fingerprint(tokenizer) != info["fingerprint"]:
        raise ValueError(f"tokenizer mismatch: its vocabulary differs from the one {path} was "
                         "trained with (fingerprint differs); use the tokenizer saved with it")


def _requires_full_sequence(model: nn.Module) -> bool:
    try:
        from readpvla.peft import requires_full_sequence
    except ImportError:  # readpvla.peft not there yet: any READ layer needs the whole prefix
        return any(type(m).__name__ == "READLayer" for m in model.modules())
    return bool(requires_full_sequence(model))


def _bool_mask(mask: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {_desc(mask)}")
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or ((mask != 0) & (mask != 1)).any():
            raise ValueError(f"{name} must be bool or 0/1 integers, got dtype {mask.dtype}")
        mask = mask.bool()
    return mask


def _desc(x: object) -> str:
    if isinstance(x, Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


class VGBart(VisionGuidedSeq2Seq):
    """VG-BART: ``BartForConditionalGeneration`` + video projection + fusion (paper Table 4)."""

    hf_class = BartForConditionalGeneration
    config_class = BartConfig

    @classmethod
    def tiny_config(cls, vocab_size: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                    ffn_dim: int = 256, dropout: float = 0.1, max_positions: int = 256,
                    pad_id: int = 0, bos_id: int = 1, eos_id: int = 2) -> BartConfig:
        """A small BART (``n_layers`` encoder and decoder layers); BART's conventions: the
        decoder starts with ``</s>``; no ``forced_bos``."""
        return BartConfig(
            vocab_size=vocab_size, d_model=d_model, max_position_embeddings=max_positions,
            encoder_layers=n_layers, decoder_layers=n_layers,
            encoder_attention_heads=n_heads, decoder_attention_heads=n_heads,
            encoder_ffn_dim=ffn_dim, decoder_ffn_dim=ffn_dim, dropout=dropout,
            attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True,
            pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
            decoder_start_token_id=eos_id, forced_eos_token_id=eos_id, forced_bos_token_id=None,
            tie_word_embeddings=True)


class VGT5(VisionGuidedSeq2Seq):
    """VG-T5: ``T5ForConditionalGeneration`` + video projection + fusion (paper Table 5)."""

    hf_class = T5ForConditionalGeneration
    config_class = T5Config

    @classmethod
    def tiny_config(cls, vocab_size: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                    ffn_dim: int = 256, dropout: float = 0.1, max_positions: int = 256,
                    pad_id: int = 0, bos_id: int = 1, eos_id: int = 2) -> T5Config:
        """A small T5 (relative positions, so ``max_positions`` is unused); T5's conventions:
        the decoder starts with ``<pad>``."""
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        return T5Config(
            vocab_size=vocab_size, d_model=d_model, d_kv=d_model // n_heads, d_ff=ffn_dim,
            num_layers=n_layers, num_decoder_layers=n_layers, num_heads=n_heads,
            dropout_rate=dropout, feed_forward_proj="relu", pad_token_id=pad_id,
            eos_token_id=eos_id, bos_token_id=bos_id, decoder_start_token_id=pad_id,
            tie_word_embeddings=True)


_ARCHS: dict[str, type[VisionGuidedSeq2Seq]] = {"VGBart": VGBart, "VGT5": VGT5}


def load_vg(path: str | Path, tokenizer: Any = None) -> VisionGuidedSeq2Seq:
    """Load a VG-BART or VG-T5 checkpoint folder, whichever it holds (see
    :meth:`VisionGuidedSeq2Seq.from_checkpoint`)."""
    return VisionGuidedSeq2Seq.from_checkpoint(path, tokenizer)
