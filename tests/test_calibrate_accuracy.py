"""``python -m autograder calibrate-accuracy``: what the accuracy protocol
costs given checkpoints (issue #14), run here on a small synthetic test set."""
import torch
from test_grader_cnn import load_models_module, synthetic_cifar, write_models

from autograder import cli


def test_calibration_reports_each_checkpoint_over_the_draws_and_the_tiers_it_implies(tmp_path, capsys):
    folder = write_models(tmp_path / "sub")
    models = load_models_module(folder, "calibration_models")
    torch.manual_seed(0)
    torch.save(models.ConvNet().state_dict(), folder / "convnet.pt")
    torch.save(models.FCNet().state_dict(), folder / "fcnet.pt")
    data_dir = synthetic_cifar(tmp_path / "data", train_per_batch=30)
    status = cli.main(["calibrate-accuracy", f"ConvNet={folder / 'convnet.pt'}", f"FCNet={folder / 'fcnet.pt'}",
                       "--models", str(folder / "models.py"), "--draws", "2", "--data-dir", str(data_dir)])
    assert status == 0
    out = capsys.readouterr().out
    assert out.count("  unchanged ") == 2 and "on 200 images" in out
    assert out.count("on 150 training images: the test images ") == 2          # 30 of each of 5 batches
    assert "mean over 2 draws (sd " in out and "drop      " in out and "agreement " in out
    assert "  tiers     65% changed ~ " in out and "  tiers     45% changed ~ " in out


def test_calibration_refuses_a_spec_it_cannot_read(tmp_path, capsys):
    assert cli.main(["calibrate-accuracy", "ResNet=x.pt"]) == 2
    assert cli.main(["calibrate-accuracy", f"ConvNet={tmp_path / 'missing.pt'}"]) == 2
    err = capsys.readouterr().err
    assert "expected CLASS=CHECKPOINT with CLASS one of ConvNet, FCNet" in err and "no file" in err
