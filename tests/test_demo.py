"""The demo (``python -m numlin demo``): it trains to its accuracy and prints its tables."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")


@pytest.mark.slow
def test_demo_reaches_97_percent_and_compresses():
    from numlin.demo import main

    lines = []
    res = main(epochs=12, out=lines.append)
    assert res.test_accuracy >= 0.97, lines
    assert [e[0] for e in res.epochs] == list(range(1, 13))
    assert res.epochs[-1][1] < res.epochs[0][1]  # the loss went down
    ranks = [c[0] for c in res.compression]
    assert ranks == sorted(ranks) and ranks[0] == 1
    accs = [c[3] for c in res.compression]
    assert accs[-1] > accs[0] and accs[-1] >= 0.9
    # singular values of the trained 256 x 10 layer, descending
    assert res.singular_values.shape == (10,) and np.all(np.diff(res.singular_values) <= 0)
    text = "\n".join(lines)
    assert "test acc" in text and "rank" in text and "nl.linalg.rsvd" in text
    # the seed's example: the tape's 5.5 and the exact Hessian [[-1/x², 1], [1, sin y]] at (2, 5)
    assert res.seed_gradient == pytest.approx(5.5, rel=1e-14)
    np.testing.assert_allclose(res.seed_hessian, [[-0.25, 1.0], [1.0, np.sin(5.0)]], rtol=1e-12, atol=1e-14)
    # ResNet-8 on the synthetic task: learns well above chance (10 classes) in two epochs, and its
    # filters compressed to rank 32 of 64 keep most of that
    assert [e[0] for e in res.resnet_epochs] == [1, 2]
    assert res.resnet_epochs[-1][1] < res.resnet_epochs[0][1]
    assert res.resnet_epochs[-1][2] >= 0.5, lines
    assert [c[0] for c in res.resnet_compression] == [4, 8, 16, 32]
    assert res.resnet_compression[-1][3] >= 0.8 * res.resnet_epochs[-1][2]
    assert "ResNet-8" in text and "nl.hessian" in text


def test_demo_cli_one_epoch_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    r = subprocess.run([sys.executable, "-m", "numlin", "demo", "--epochs", "1", "--plot", str(png)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "epoch" in r.stdout and "rank" in r.stdout
    assert "df/dx = 5.5" in r.stdout and "ResNet-8" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_cli_rejects_bad_epochs():
    r = subprocess.run([sys.executable, "-m", "numlin", "demo", "--epochs", "0"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--epochs must be >= 1" in r.stderr


def test_demo_prewarming_process_is_optional_and_never_left_running():
    from numlin import demo
    from numlin._config import override

    assert demo._start_warming("cuda") is None
    with override(demo_prewarm=False):
        assert demo._start_warming("cpu") is None
    demo._finish_warming(None)
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    demo._finish_warming(slow, timeout=0.5)  # past its time: stopped, not waited for a minute
    assert slow.poll() is not None
