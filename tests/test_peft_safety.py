"""readpvla.peft fails safely: atomic saves, transactional apply / load, READ only on token
sequences, READ under generate(), and adapter files that are checked before they are trusted."""

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
from toymodels import JointEncoder, tiny_bart, tiny_bert, tiny_t5

import readpvla as rp
from readpvla.peft import (
    AdapterConfig,
    BitFitConfig,
    FullConfig,
    LoRAConfig,
    PartialConfig,
    ProjConfig,
    PromptConfig,
    READConfig,
    READLayer,
    mapping,
)

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


# -- helpers ---------------------------------------------------------------------------------


def _fingerprint(model: torch.nn.Module) -> dict:
    """Everything apply / load_adapter could touch: structure, values, flags, attributes, hooks."""
    gen = getattr(model, "generation_config", None)
    return {
        "modules": [(n, type(m), id(m)) for n, m in model.named_modules()],
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "params": [(n, id(p), p.requires_grad) for n, p in model.named_parameters()],
        "attrs": {n: sorted(m.__dict__) for n, m in model.named_modules()},
        "hooks": {n: (len(m._forward_pre_hooks), len(m._forward_hooks))
                  for n, m in model.named_modules()},
        "use_cache": None if gen is None else (id(gen), gen.use_cache),
    }


def _assert_unchanged(model: torch.nn.Module, before: dict) -> None:
    after = _fingerprint(model)
    assert after["modules"] == before["modules"]
    assert after["params"] == before["params"]
    assert after["attrs"] == before["attrs"]
    assert after["hooks"] == before["hooks"]
    assert after["use_cache"] == before["use_cache"]
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), f"{k} changed"
    assert getattr(model, "readpvla_config", None) is None


def _backbone(seed: int = 0) -> JointEncoder:
    torch.manual_seed(seed)
    model = JointEncoder()
    model.head.requires_grad_(False)  # mixed flags: a rollback must restore them exactly
    return model


def _trained(cfg, seed: int = 1) -> JointEncoder:
    torch.manual_seed(seed)
    model = rp.peft.apply(JointEncoder(), cfg)
    with torch.no_grad():
        for p in rp.peft.adapter_state_dict(model).values():
            p.normal_()  # as after training: W_up / B != 0
    return model


def _adapter_values(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in rp.peft.adapter_state_dict(model).items()}


def _rewrite_weights(path: Path, fn) -> None:
    """Rewrite the safetensors file through ``fn(state)``, keeping its metadata."""
    with safe_open(str(path / WEIGHTS), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    save_file(fn(state), str(path / WEIGHTS), metadata=meta)


def _rewrite_config(path: Path, fn) -> None:
    """Edit the JSON config consistently: the file, and any copy of it stored with the weights."""
    old = json.loads((path / CONFIG).read_text())
    new = fn(json.loads(json.dumps(old)))
    text = json.dumps(new, indent=2)
    (path / CONFIG).write_text(text)
    with safe_open(str(path / WEIGHTS), "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    for k, v in meta.items():
        try:
            if json.loads(v) == old:
                meta[k] = text
        except ValueError:
            pass
    save_file(state, str(path / WEIGHTS), metadata=meta)


ALL = [READConfig(cell="gru"), AdapterConfig(), LoRAConfig(r=2), PromptConfig(n_tokens=2),
       FullConfig(), PartialConfig(), BitFitConfig(), ProjConfig()]


# -- item 3: save_adapter writes the pair atomically -------------------------------------------


@pytest.mark.parametrize("which", [WEIGHTS, CONFIG])
def test_weights_and_config_of_two_different_saves_are_refused(which, tmp_path):
    # a kill -9 between the two writes of a save over `a` leaves one file of each save
    a = rp.peft.save_adapter(_trained(LoRAConfig(r=2, alpha=8)), tmp_path / "a")
    b = rp.peft.save_adapter(_trained(LoRAConfig(r=2, alpha=64), seed=2), tmp_path / "b")
    shutil.copy(b / which, a / which)
    with pytest.raises(ValueError, match="different saves"):
        rp.peft.load_adapter(JointEncoder(), a)


def _check_old_adapter_intact(path: Path, old: dict[str, torch.Tensor]) -> None:
    assert sorted(os.listdir(path)) == [CONFIG, WEIGHTS]  # no temporary files left behind
    loaded = rp.peft.load_adapter(JointEncoder(), path)
    assert loaded.readpvla_config == LoRAConfig(r=2, alpha=8)
    new = _adapter_values(loaded)
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in old)


def test_a_save_that_fails_while_writing_the_config_keeps_the_old_adapter(tmp_path, monkeypatch):
    old_model = _trained(LoRAConfig(r=2, alpha=8))
    path = rp.peft.save_adapter(old_model, tmp_path / "a")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        rp.peft.save_adapter(_trained(LoRAConfig(r=2, alpha=64), seed=2), path)
    with pytest.raises(OSError, match="disk full"):  # a new folder is not left half-written
        rp.peft.save_adapter(_trained(LoRAConfig(r=2, alpha=64), seed=2), tmp_path / "new")
    monkeypatch.undo()
    assert not (tmp_path / "new").exists()
    _check_old_adapter_intact(path, _adapter_values(old_model))


def test_a_save_interrupted_between_the_two_renames_rolls_back(tmp_path, monkeypatch):
    old_model = _trained(LoRAConfig(r=2, alpha=8))
    path = rp.peft.save_adapter(old_model, tmp_path / "a")
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the weights are in place, the config is not
            raise OSError("interrupted")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="interrupted"):
        rp.peft.save_adapter(_trained(LoRAConfig(r=2, alpha=64), seed=2), path)
    monkeypatch.undo()
    _check_old_adapter_intact(path, _adapter_values(old_model))


def test_save_checks_the_target_before_doing_any_work(tmp_path, monkeypatch):
    model = rp.peft.apply(JointEncoder(), READConfig())

    def no_work(*args, **kwargs):
        raise AssertionError("save_adapter did work before checking the target")

    monkeypatch.setattr(mapping, "adapter_state_dict", no_work)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match=re.escape(str(file)) + ".*not a directory"):
        rp.peft.save_adapter(model, file)
    with pytest.raises(ValueError, match=re.escape(str(file))):
        rp.peft.save_adapter(model, file / "sub")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            with pytest.raises(ValueError, match="not writable"):
                rp.peft.save_adapter(model, ro)
        finally:
            ro.chmod(0o755)


# -- item 4: apply and load_adapter are transactions -------------------------------------------


def test_apply_with_a_target_it_cannot_wrap_leaves_the_model_as_it_was():
    model = _backbone()
    before = _fingerprint(model)
    with pytest.raises(ValueError, match="output width of blocks"):
        rp.peft.apply(model, READConfig(target=".*"))  # proj_v, proj_t wrapped, then `blocks`
    _assert_unchanged(model, before)
    with pytest.raises(ValueError, match="must be nn.Linear"):
        rp.peft.apply(model, LoRAConfig(target=".*"))
    _assert_unchanged(model, before)
    rp.peft.apply(model, READConfig())  # and the model still takes an adapter


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c.method)
def test_apply_failing_after_injection_leaves_the_model_as_it_was(cfg, monkeypatch):
    model = _backbone()
    before = _fingerprint(model)

    def boom(model):
        raise RuntimeError("boom")

    monkeypatch.setattr(mapping, "mark_trainable", boom)
    with pytest.raises(RuntimeError, match="boom"):
        rp.peft.apply(model, cfg)
    _assert_unchanged(model, before)


def test_apply_failing_on_bart_removes_hooks_and_generation_settings(monkeypatch):
    model = tiny_bart()
    before = _fingerprint(model)

    def boom(model):
        raise KeyError("boom")

    monkeypatch.setattr(mapping, "mark_trainable", boom)
    with pytest.raises(KeyError, match="boom"):
        rp.peft.apply(model, READConfig())
    _assert_unchanged(model, before)


@pytest.mark.parametrize("cfg", [FullConfig(), READConfig(), LoRAConfig(r=2)],
                         ids=lambda c: c.method)
def test_load_adapter_with_a_bad_last_tensor_leaves_the_model_as_it_was(cfg, tmp_path):
    path = rp.peft.save_adapter(_trained(cfg), tmp_path / "a")
    model = _backbone()
    last = list(json.loads((path / CONFIG).read_text())["parameters"])[-1]  # copied last

    def poison(state):
        state[last] = torch.full_like(state[last], float("nan"))
        return state

    _rewrite_weights(path, poison)
    before = _fingerprint(model)
    with pytest.raises(ValueError, match=re.escape(repr(last)) + ".*NaN or inf"):
        rp.peft.load_adapter(model, path)
    _assert_unchanged(model, before)


def test_load_adapter_failing_while_copying_restores_the_backbone_values(tmp_path, monkeypatch):
    path = rp.peft.save_adapter(_trained(FullConfig()), tmp_path / "a")
    model = _backbone()
    before = _fingerprint(model)
    real, seen = torch.Tensor.copy_, []

    def flaky(self, src, *args, **kwargs):
        seen.append(1)
        if len(seen) == 5:
            raise RuntimeError("device lost")
        return real(self, src, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "copy_", flaky)
    with pytest.raises(RuntimeError, match="device lost"):
        rp.peft.load_adapter(model, path)
    monkeypatch.undo()
    _assert_unchanged(model, before)


# -- item 5: READ needs a token axis ----------------------------------------------------------


def test_read_refuses_bert_pooler_at_apply_time():
    model = tiny_bert()
    before = _fingerprint(model)
    with pytest.raises(ValueError, match=r"pooler\.dense.*no token axis"):
        rp.peft.apply(model, READConfig(target=["dense"]))
    _assert_unchanged(model, before)


@pytest.mark.parametrize("target", [None, r"encoder\.layer\.\d+\.(attention\.)?output\.dense"])
def test_read_on_bert_keeps_batch_items_independent(target):
    torch.manual_seed(0)
    model = rp.peft.apply(tiny_bert(), READConfig(target=target))
    for m in model.modules():
        if isinstance(m, READLayer):
            torch.nn.init.normal_(m.w_up.weight, std=0.5)
    ids = torch.randint(4, 50, (2, 6))
    other = ids.clone()
    other[0] = torch.randint(4, 50, (6,))  # change item 0 only
    with torch.no_grad():
        out, out2 = model(input_ids=ids), model(input_ids=other)
    assert not torch.allclose(out.last_hidden_state[0], out2.last_hidden_state[0])
    assert torch.equal(out.last_hidden_state[1], out2.last_hidden_state[1])
    assert torch.equal(out.pooler_output[1], out2.pooler_output[1])


class _Pooled(torch.nn.Module):
    """Tokens -> mean -> head: the head's output [B, d] has no token axis (names do not tell)."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.head(self.tok(x).mean(1))


def test_read_refuses_an_output_without_token_axis_at_the_first_forward():
    model = rp.peft.apply(_Pooled(), READConfig(target="head"))
    with pytest.raises(ValueError, match=r"'head'.*\(3, 4\).*no token axis"):
        model(torch.randn(3, 5, 4))


# -- item 6: READ under generate() ------------------------------------------------------------


@pytest.mark.parametrize("make", [tiny_bart, tiny_t5], ids=["bart", "t5"])
def test_generate_with_read_in_the_decoder_equals_the_full_sequence_pass(make):
    torch.manual_seed(0)
    model = rp.peft.apply(make(), READConfig(bottleneck=3))
    for m in model.modules():
        if isinstance(m, READLayer):
            torch.nn.init.normal_(m.w_up.weight, std=1.0)
    ids = torch.randint(4, 50, (2, 6))
    kw = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False, "num_beams": 1,
          "output_logits": True, "return_dict_in_generate": True}
    default = model.generate(input_ids=ids, **kw)
    full = model.generate(input_ids=ids, use_cache=False, **kw)
    assert torch.equal(default.sequences, full.sequences)
    for a, b in zip(default.logits, full.logits, strict=True):
        torch.testing.assert_close(a, b)
    # asking for the cache explicitly would give other tokens: refused, naming the fix
    with pytest.raises(ValueError, match=r"KV cache.*use_cache=False"):
        model.generate(input_ids=ids, use_cache=True, **kw)


def test_read_only_in_the_encoder_keeps_the_kv_cache():
    model = rp.peft.apply(tiny_bart(), READConfig(target=r"model\.encoder\.layers\.\d+\.fc2"))
    assert model.generation_config.use_cache is True
    model.generate(input_ids=torch.randint(4, 50, (1, 5)), max_new_tokens=3, use_cache=True)


# -- item 7: load_adapter checks its files before trusting them ------------------------------


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float16])
def test_load_refuses_tensors_of_another_dtype(dtype, tmp_path):
    path = rp.peft.save_adapter(_trained(READConfig()), tmp_path / "a")
    name = sorted(json.loads((path / CONFIG).read_text())["parameters"])[0]
    _rewrite_weights(path, lambda s: {**s, name: s[name].to(dtype)})
    model = _backbone()
    before = _fingerprint(model)
    with pytest.raises(ValueError, match=re.escape(repr(name)) + ".*dtype"):
        rp.peft.load_adapter(model, path)
    _assert_unchanged(model, before)


def test_load_checks_format_version_and_backbone_class(tmp_path):
    path = rp.peft.save_adapter(_trained(READConfig()), tmp_path / "a")
    saved = (path / CONFIG).read_text(), (path / WEIGHTS).read_bytes()
    _rewrite_config(path, lambda m: {**m, "format_version": 99})
    with pytest.raises(ValueError, match="format_version 99.*newer"):
        rp.peft.load_adapter(JointEncoder(), path)
    (path / CONFIG).write_text(saved[0])
    (path / WEIGHTS).write_bytes(saved[1])
    _rewrite_config(path, lambda m: {**m, "backbone_class": "OtherModel"})
    with pytest.raises(ValueError, match="'OtherModel'.*'JointEncoder'"):
        rp.peft.load_adapter(JointEncoder(), path)


def test_a_huge_bottleneck_in_the_config_is_refused_before_anything_is_built(tmp_path,
                                                                            monkeypatch):
    path = rp.peft.save_adapter(_trained(READConfig()), tmp_path / "a")
    _rewrite_config(path, lambda m: {**m, "config": {**m["config"], "bottleneck": 20000}})
    real_init = READLayer.__init__

    def only_on_meta(self, base, config, name=""):
        # READ on a real device with k = 20000 allocates gigabytes: only a meta dry run may
        assert next(base.parameters()).is_meta, "READ layer built for real before the check"
        real_init(self, base, config, name)

    monkeypatch.setattr(READLayer, "__init__", only_on_meta)
    model = _backbone()
    before = _fingerprint(model)
    with pytest.raises(ValueError, match=r"has shape \[4[^\]]*\] in .* but \[20000[^\]]*\]"):
        rp.peft.load_adapter(model, path)
    _assert_unchanged(model, before)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_weights_file_is_named(damage, tmp_path):
    path = rp.peft.save_adapter(_trained(READConfig()), tmp_path / "a")
    blob = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(blob[:-10] if damage == "truncate" else b"\x07" * 64)
    with pytest.raises(ValueError, match=re.escape(str(path / WEIGHTS))):
        rp.peft.load_adapter(JointEncoder(), path)


def test_inf_is_refused_naming_the_tensor(tmp_path):
    path = rp.peft.save_adapter(_trained(AdapterConfig()), tmp_path / "a")
    name = "blocks.1.fc2.w_up.bias"
    _rewrite_weights(path, lambda s: {**s, name: torch.full_like(s[name], float("inf"))})
    with pytest.raises(ValueError, match=re.escape(repr(name)) + ".*NaN or inf"):
        rp.peft.load_adapter(JointEncoder(), path)


def test_format_version_1_adapters_still_load(tmp_path):
    model = _trained(LoRAConfig(r=2))
    path = rp.peft.save_adapter(model, tmp_path / "a")
    meta = json.loads((path / CONFIG).read_text())
    v1 = {k: meta[k] for k in ("format", "config", "backbone_class", "n_parameters",
                               "parameters")}
    (path / CONFIG).write_text(json.dumps({**v1, "format_version": 1}, indent=2))
    with safe_open(str(path / WEIGHTS), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    save_file(state, str(path / WEIGHTS), metadata={"format": "readpvla-adapter"})
    loaded = rp.peft.load_adapter(JointEncoder(), path)
    new, old = _adapter_values(loaded), _adapter_values(model)
    assert all(torch.equal(new[k], old[k]) for k in old)
