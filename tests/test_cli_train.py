import json

import pytest

from conftest import cli


def test_train_end_to_end_on_digits(tmp_path):
    result = cli("train", "--dataset", "digits", "--seeds", "0-1", "--epochs", "2",
                 "--out", tmp_path, "--device", "cpu")
    assert result.exit_code == 0, result.output
    for seed in (0, 1):
        run = tmp_path / f"digits-smallcnn-ce-seed{seed}"
        assert json.loads((run / "status.json").read_text())["status"] == "complete"
    assert "training runs" in result.output and "digits-smallcnn-ce-seed1" in result.output
    # not a terminal: one plain line per epoch, no progress bar
    epochs = [ln for ln in result.output.splitlines() if " epoch " in ln]
    assert [ln.split(":")[0] for ln in epochs] == [f"digits-smallcnn-ce-seed{s}"
                                                   for s in (0, 0, 1, 1)]
    assert "epoch 2/2 loss" in epochs[1] and not any("━" in ln for ln in epochs)
    again = cli("train", "--dataset", "digits", "--seeds", "0-1", "--epochs", "2",
                "--out", tmp_path)
    assert again.exit_code == 0 and "skipped" in again.output


def test_list_shows_registries():
    result = cli("list")
    assert result.exit_code == 0
    for word in ("mnist5k", "digits", "smallcnn", "preactresnet18", "resnet18", "ce"):
        assert word in result.output
    assert cli("list", "models").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'; valid:"),
        (["train", "--model", "vgg"], "unknown model 'vgg'; valid:"),
        (["train", "--loss", "hinge"], "unknown loss 'hinge'; valid:"),
        (["train", "--seeds", "3-1"], "malformed seed"),
        (["train", "--seeds", "x"], "malformed seed"),
        (["train", "--epochs", "0"], "--epochs must be positive"),
        (["train", "--batch-size", "-5"], "--batch-size must be positive"),
        (["train", "-o", "gamma=1"], "unknown option 'gamma' for loss 'ce'"),
        (["train", "--loss", "laplacian", "-o", "m=two"],
         "loss 'laplacian' option m='two' is not a valid int"),
        (["train", "--loss", "laplacian", "-o", "gama=1"],
         "unknown option 'gama' for loss 'laplacian'; valid: gamma, m, k"),
        (["train", "-o", "novalue"], "key=value"),
        (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent/x"], "--download"),
        (["train", "--device", "tpu"], "unknown device"),
        (["list", "widgets"], "unknown registry"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, tmp_path):
    result = cli(*args, "--out", tmp_path / "o") if args[0] == "train" else cli(*args)
    assert result.exit_code != 0
    assert message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("train", "--dataset", "digits", "--epochs", "1", "--out", blocker / "sub")
    assert result.exit_code == 1 and "not writable" in result.output


def test_channels_last_is_recorded_and_refused_where_unsafe(tmp_path):
    ok = cli("train", "--dataset", "digits", "--epochs", "1", "--channels-last",
             "--out", tmp_path, "--device", "cpu")
    assert ok.exit_code == 0, ok.output
    (config,) = tmp_path.rglob("config.json")
    record = json.loads(config.read_text())
    assert record["train"]["channels_last"] is True
    assert record["numerics"]["layout"] == "channels_last"
    bad = cli("train", "--dataset", "digits", "--model", "preactresnet18", "--width", "4",
              "--epochs", "1", "--channels-last", "--out", tmp_path / "bad", "--device", "cpu")
    assert bad.exit_code == 1 and "at least 8 channels" in bad.output
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
