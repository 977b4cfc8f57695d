"""The command line fails early and in one line on bad arguments, never loses results, and never
overwrites the shipped checkpoints by default."""

from __future__ import annotations

from pathlib import Path

import pytest

import readpvla.experiment.grid as grid
import readpvla.tasks.retrieval.cli as ret_cli
import readpvla.tasks.tlg.cli as tlg_cli
import readpvla.tasks.vls.cli as vls_cli
from readpvla import cli
from readpvla.tasks import tlg, vls


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """``readpvla ARGV`` in-process: exit code and the stderr lines."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse errors
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any training or pretraining starts."""
    def boom(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(grid, "run_job", boom)
    for module in (tlg_cli, vls_cli, ret_cli):
        monkeypatch.setattr(module, "pretrain", boom)
    monkeypatch.setattr("readpvla.tasks.vls.transfer.load_backbone", boom)
    monkeypatch.setattr("readpvla.tasks.vls.probes.load_backbone", boom)


@pytest.mark.parametrize("argv, needle", [
    (["transfer-tlg", "--methods", "Bogus"], "invalid choice: 'Bogus'"),
    (["transfer-tlg", "--device", "bogus"], "unknown device 'bogus'"),
    (["transfer-tlg", "--device", "cuda:7"], "cuda:7"),
    (["transfer-tlg", "--workers", "0"], "must be >= 1"),
    (["transfer-tlg", "--seeds", "-1"], "must be >= 0"),
    (["transfer-tlg", "--checkpoint", "no/such/checkpoint"], "no such folder"),
    (["transfer-tlg", "--resume", "--overwrite"], "exclude each other"),
    (["pretrain-tlg", "--epochs", "-1"], "must be >= 1"),
    (["pretrain-tlg", "--lr", "nan"], "finite number > 0"),
    (["pretrain-tlg", "--device", "tpu"], "tpu"),
    (["pretrain-vls", "--steps", "0"], "must be >= 1"),
    (["pretrain-vls", "--threads", "0"], "must be >= 1"),
    (["transfer-vls", "--threads", "0"], "must be >= 1"),
    (["transfer-vls", "--methods", "bogus"], "invalid choice"),
    (["tune-vls", "--methods", "bogus"], "invalid choice"),
    (["tune-vls", "--resume", "--overwrite"], "exclude each other"),
    (["tune-tlg", "--rows", "Bogus"], "invalid choice"),
    (["probe-vls", "--tables", "colour"], "invalid choice"),
    (["probe-vls", "--seeds", "-1"], "must be >= 0"),
    (["probe-vls", "--resume", "--overwrite"], "exclude each other"),
    (["run-notebooks", "-p", "typo", "1", "--notebooks", "notebooks"], "unknown parameter(s) typo"),
    (["run-notebooks", "--only", "99"], "no notebooks matching"),
    (["pretrain-videoclip", "--temporal", "3d"], "invalid choice"),
    (["pretrain-videoclip", "--epochs", "0"], "must be >= 1"),
    (["transfer-retrieval", "--rows", "Bogus"], "invalid choice: 'Bogus'"),
    (["transfer-retrieval", "--domains", "mars"], "invalid choice"),
    (["transfer-recognition", "--shots", "3"], "invalid choice"),
    (["transfer-recognition", "--address", "auto"], "--address is for --executor ray"),
    (["eval-retrieval"], "one of the arguments"),
    (["no-such-command"], "unknown command"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, no_work, argv, needle):
    if argv[0] == "run-notebooks" and "--notebooks" in argv:
        argv = [*argv[:-1], str(Path(__file__).resolve().parents[1] / "notebooks")]
    if argv[0] == "transfer-tlg" and "--device" not in argv:
        argv = [*argv, "--device", "cpu"]
    code, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert needle in err[0]


def test_pretrain_steps_zero_refused_in_the_library_too():
    with pytest.raises(ValueError, match="steps must be None or a positive integer"):
        vls.PretrainConfig(steps=0)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        tlg.TransferSettings(epochs=0)
    with pytest.raises(ValueError, match="mass"):
        tlg.TransferSettings(mass=1.5)


def _unwritable(tmp_path: Path) -> Path:
    """A folder that cannot be created (its parent is a file): unwritable even for root."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return blocker / "out"


@pytest.mark.parametrize("argv", [
    ["transfer-tlg", "--device", "cpu", "--out"],
    ["transfer-retrieval", "--out"],
    ["transfer-recognition", "--out"],
    ["pretrain-videoclip", "--out"],
    ["transfer-vls", "--out-dir"],
    ["tune-vls", "--out"],
    ["tune-tlg", "--out"],
    ["probe-vls", "--out"],
    ["pretrain-tlg", "--out"],
    ["pretrain-vls", "--out"],
    ["run-notebooks", "--only", "01", "--out"],
])
def test_unwritable_output_fails_before_any_work(capsys, no_work, tmp_path, argv):
    code, err = run_cli(capsys, *argv, str(_unwritable(tmp_path)))
    assert code in (1, 2) and len(err) == 1 and "cannot write to" in err[0], err


def test_library_checks_the_output_before_training(no_work, tmp_path):
    with pytest.raises(ValueError, match="cannot write to"):
        tlg.run_transfer("crossmodal", out_dir=_unwritable(tmp_path), progress=False)
    with pytest.raises(ValueError, match="cannot write to"):
        tlg.run_ablations("crossmodal", out_dir=_unwritable(tmp_path), progress=False)


@pytest.mark.parametrize("command, module", [("pretrain-tlg", tlg_cli), ("pretrain-vls", vls_cli)])
def test_pretrain_default_out_is_not_the_shipped_checkpoint(capsys, monkeypatch, tmp_path,
                                                            command, module):
    seen = {}

    def fake_pretrain(backbone, *args, **kw):
        out = args[1] if command == "pretrain-tlg" else args[0]
        seen["out"] = Path(out)
        raise SystemExit(0)

    monkeypatch.setattr(module, "pretrain", fake_pretrain)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        cli.main([command])
    assert seen["out"].parts[:2] == ("runs", f"{command}"), seen
    assert "data_samples" not in str(seen["out"])


@pytest.mark.parametrize("command", ["pretrain-tlg", "pretrain-vls", "pretrain-videoclip"])
def test_pretrain_refuses_to_overwrite_a_checkpoint(capsys, no_work, tmp_path, command):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"keep me")
    code, err = run_cli(capsys, command, "--out", str(out))
    assert code == 2 and "--overwrite" in err[0] and len(err) == 1
    assert (out / "model.safetensors").read_bytes() == b"keep me"


def test_transfer_refuses_to_discard_finished_runs(capsys, no_work, tmp_path):
    (tmp_path / "runs_table1.jsonl").write_text('{"record": {}}\n')
    code, err = run_cli(capsys, "transfer-tlg", "--device", "cpu", "--out", str(tmp_path))
    assert code == 2 and "--resume" in err[0] and len(err) == 1
    assert (tmp_path / "runs_table1.jsonl").read_text() == '{"record": {}}\n'


def test_library_errors_are_one_line(capsys, monkeypatch, tmp_path):
    def bad(*a, **k):
        raise ValueError("data/x.jsonl:3: malformed line")

    monkeypatch.setattr(tlg_cli, "run_transfer", bad)
    code, err = run_cli(capsys, "transfer-tlg", "--device", "cpu", "--out", str(tmp_path))
    assert code == 1 and err == ["readpvla transfer-tlg: error: data/x.jsonl:3: malformed line"]
