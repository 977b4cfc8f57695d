"""Backbone checkpoints fail safely: atomic saves, header-first loads, named errors."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from readpvla.backbones.checkpoint import load_backbone, save_backbone
from readpvla.backbones.moment_detr import MomentDETR
from readpvla.backbones.tlg import CrossModalConfig, CrossModalTLG

ROOT = Path(__file__).resolve().parents[1]
TINY = {"d_video": 8, "d_text": 6, "d_model": 16, "n_heads": 2, "d_ffn": 32}


def _tiny(seed: int = 0, **kw) -> CrossModalTLG:
    torch.manual_seed(seed)
    return CrossModalTLG(CrossModalConfig(**{**TINY, **kw})).eval()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _rewrite_weights(path: Path, fn, metadata_fn=lambda m: m) -> None:
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    save_file(fn(state), str(path / "model.safetensors"), metadata=metadata_fn(meta))


@pytest.mark.parametrize("kind", ["crossmodal", "momentdetr"])
def test_shipped_checkpoints_still_load(kind):
    model = load_backbone(ROOT / "data_samples" / "tlg" / "checkpoints" / kind)
    assert isinstance(model, CrossModalTLG if kind == "crossmodal" else MomentDETR)


def test_weights_and_config_of_two_different_saves_are_refused(tmp_path):
    a = save_backbone(_tiny(0, dropout=0.0), tmp_path / "a")
    b = save_backbone(_tiny(1, dropout=0.3), tmp_path / "b")  # same shapes, other config
    shutil.copy(b / "model.safetensors", a / "model.safetensors")
    with pytest.raises(ValueError, match=r"different saves.*\['config'"):
        load_backbone(a)


def test_a_save_interrupted_between_the_two_renames_rolls_back(tmp_path, monkeypatch):
    old = _tiny(0)
    path = save_backbone(old, tmp_path / "ck")
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("interrupted")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="interrupted"):
        save_backbone(_tiny(1), path)
    monkeypatch.undo()
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    assert _same_weights(load_backbone(path), old)


def test_save_refuses_a_target_that_is_a_file(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match=re.escape(str(file)) + ".*not a directory"):
        save_backbone(_tiny(), file)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_load_refuses_non_float_tensors(dtype, tmp_path):
    path = save_backbone(_tiny(), tmp_path / "ck")
    name = next(k for k, v in _tiny().state_dict().items() if v.is_floating_point())
    _rewrite_weights(path, lambda s: {**s, name: s[name].to(dtype)})
    with pytest.raises(ValueError, match=re.escape(repr(name)) + ".*dtype"):
        load_backbone(path)


def test_load_names_a_truncated_file_and_a_class_that_disagrees(tmp_path):
    path = save_backbone(_tiny(), tmp_path / "ck")
    blob = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(blob[:-16])
    with pytest.raises(ValueError, match=re.escape(str(path / "model.safetensors"))):
        load_backbone(path)
    (path / "model.safetensors").write_bytes(blob)
    _rewrite_weights(path, lambda s: s, lambda m: {**m, "class": "MomentDETR"})
    with pytest.raises(ValueError, match="'MomentDETR'.*'CrossModalTLG'"):
        load_backbone(path)


def test_a_bigger_config_is_refused_before_the_model_is_built(tmp_path, monkeypatch):
    path = save_backbone(_tiny(), tmp_path / "ck")
    info = json.loads((path / "config.json").read_text())
    info["config"]["d_ffn"] = 4096
    (path / "config.json").write_text(json.dumps(info))
    real_init = CrossModalTLG.__init__

    def only_on_meta(self, config):
        # a config edited to d_ffn = 10**7 would allocate gigabytes: only a meta dry run may
        assert torch.get_default_device().type == "meta", "built for real before the check"
        real_init(self, config)

    monkeypatch.setattr(CrossModalTLG, "__init__", only_on_meta)
    with pytest.raises(ValueError, match=r"has shape \[32.*expects \[4096"):
        load_backbone(path)


def test_nan_and_version_are_refused(tmp_path):
    path = save_backbone(_tiny(), tmp_path / "ck")
    info = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**info, "format_version": "1"}))
    with pytest.raises(ValueError, match="format_version '1'"):
        load_backbone(path)
    (path / "config.json").write_text(json.dumps(info, indent=2) + "\n")
    name = next(iter(_tiny().state_dict()))
    _rewrite_weights(path, lambda s: {**s, name: torch.full_like(s[name], float("nan"))})
    with pytest.raises(ValueError, match=re.escape(repr(name)) + ".*NaN or inf"):
        load_backbone(path)
