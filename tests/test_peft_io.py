"""save_adapter / load_adapter: safetensors + JSON, bit-for-bit in a fresh process, loud errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from toymodels import JointEncoder

import readpvla as rp
from readpvla.peft import AdapterConfig, FullConfig, LoRAConfig, PromptConfig, READConfig

HERE = Path(__file__).resolve().parent

FRESH = r"""
import sys, torch
torch.set_num_threads({threads})  # bit-exact needs the parent's thread count
sys.path.insert(0, {tests!r})
from safetensors.torch import save_file
from toymodels import JointEncoder
import readpvla as rp
torch.manual_seed(0)
model = rp.peft.load_adapter(JointEncoder(), {path!r})
g = torch.Generator().manual_seed(1)
v, t = torch.randn(2, 5, 6, generator=g), torch.randn(2, 4, 5, generator=g)
vm = torch.tensor([[1, 1, 1, 0, 0], [1] * 5], dtype=torch.bool)
with torch.no_grad():
    h, s = model(v, t, vm)
save_file({{"h": h, "s": s}}, {out!r})
"""


def _train_a_bit(model):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        opt.zero_grad()
        v, t = torch.randn(3, 5, 6, generator=g), torch.randn(3, 4, 5, generator=g)
        model(v, t)[1].pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("cfg", [READConfig(cell="gru"), AdapterConfig(), LoRAConfig(r=2),
                                 PromptConfig(n_tokens=2), FullConfig()], ids=lambda c: c.method)
def test_save_then_load_in_fresh_process_is_bit_exact(cfg, tmp_path):
    torch.manual_seed(0)
    model = rp.peft.apply(JointEncoder(), cfg)
    _train_a_bit(model)
    path = rp.peft.save_adapter(model, tmp_path / "adapter")
    meta = json.loads((path / "adapter_config.json").read_text())
    assert meta["config"]["method"] == cfg.method
    stored = load_file(str(path / "adapter_model.safetensors"))
    assert set(stored) == set(rp.peft.adapter_state_dict(model))  # adapter weights only
    assert meta["n_parameters"] == rp.peft.count_parameters(model).trainable
    g = torch.Generator().manual_seed(1)
    v, t = torch.randn(2, 5, 6, generator=g), torch.randn(2, 4, 5, generator=g)
    vm = torch.tensor([[1, 1, 1, 0, 0], [1] * 5], dtype=torch.bool)
    with torch.no_grad():
        h, s = model(v, t, vm)
    out = tmp_path / "fresh.safetensors"
    script = FRESH.format(tests=str(HERE), path=str(path), out=str(out),
                          threads=torch.get_num_threads())
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    fresh = load_file(str(out))
    assert torch.equal(fresh["h"], h) and torch.equal(fresh["s"], s)


def test_loading_into_the_wrong_backbone_names_parameter_and_shapes(tmp_path):
    model = rp.peft.apply(JointEncoder(d=16), READConfig())
    path = rp.peft.save_adapter(model, tmp_path / "a")
    with pytest.raises(ValueError, match=r"blocks\.0\.fc2\.rnn|blocks\.0\.fc2\.w_"
                       r".*shape \[.*\].*but \[.*\] in JointEncoder"):
        rp.peft.load_adapter(JointEncoder(d=24), path)
    with pytest.raises(ValueError, match=r"'blocks\.2\.fc2\..*' .*does not exist"):
        big = rp.peft.apply(JointEncoder(n_blocks=3), READConfig())
        rp.peft.load_adapter(JointEncoder(n_blocks=2), rp.peft.save_adapter(big, tmp_path / "b"))
    with pytest.raises(ValueError, match=r"lacks 2 adapter parameter\(s\)|lacks \d+ adapter"):
        small = rp.peft.apply(JointEncoder(n_blocks=1), READConfig())
        rp.peft.load_adapter(JointEncoder(n_blocks=2), rp.peft.save_adapter(small, tmp_path / "c"))


def test_malformed_checkpoints_fail_clearly(tmp_path):
    model = rp.peft.apply(JointEncoder(), READConfig())
    path = rp.peft.save_adapter(model, tmp_path / "a")
    cfg_file = path / "adapter_config.json"
    meta = json.loads(cfg_file.read_text())
    with pytest.raises(FileNotFoundError, match="not a readpvla adapter directory"):
        rp.peft.load_adapter(JointEncoder(), tmp_path / "nothing")
    cfg_file.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        rp.peft.load_adapter(JointEncoder(), path)
    cfg_file.write_text(json.dumps({**meta, "config": {"method": "magic"}}))
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        rp.peft.load_adapter(JointEncoder(), path)
    cfg_file.write_text(json.dumps({**meta, "config": {**meta["config"], "bottleneck": -1}}))
    with pytest.raises(ValueError, match="bottleneck must be a positive integer"):
        rp.peft.load_adapter(JointEncoder(), path)
    cfg_file.write_text(json.dumps({**meta, "config": {**meta["config"], "colour": "red"}}))
    with pytest.raises(ValueError, match="unknown READConfig field"):
        rp.peft.load_adapter(JointEncoder(), path)
    cfg_file.write_text(json.dumps(meta))
    state = load_file(str(path / "adapter_model.safetensors"))
    with safe_open(str(path / "adapter_model.safetensors"), "pt") as f:
        file_meta = f.metadata()  # keeps the config copy: the pair still agrees
    name = sorted(state)[0]
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, str(path / "adapter_model.safetensors"), metadata=file_meta)
    with pytest.raises(ValueError, match="NaN or inf"):
        rp.peft.load_adapter(JointEncoder(), path)
