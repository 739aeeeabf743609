"""check-bn on real modules: bnviz's own from-scratch BN, the book's module, and one written
wrong on purpose; and its one-line messages for unusable input."""
import subprocess
import sys

import pytest
import torch
from torch import nn

from bnviz.check_bn import CheckError, check_batchnorm, find_names, load_class
from bnviz.cli import main
from tests.conftest import ROOT

# d2l's module with three classic mistakes, one per code path, so each is found by name:
# the FC branch forgets eps, the conv branch takes statistics over N only (not N, H, W), and
# the running statistics are never updated.
WRONG = '''
import torch
from torch import nn


class BatchNorm(nn.Module):
    def __init__(self, num_features, num_dims):
        super().__init__()
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    def forward(self, X):
        if not self.training:
            X_hat = (X - self.moving_mean) / torch.sqrt(self.moving_var + 1e-5)
        elif X.dim() == 2:
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
            X_hat = (X - mean) / torch.sqrt(var)
        else:
            mean = X.mean(dim=0, keepdim=True)
            var = ((X - mean) ** 2).mean(dim=0, keepdim=True)
            X_hat = (X - mean) / torch.sqrt(var + 1e-5)
        return self.gamma * X_hat + self.beta
'''


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "bnviz", "check-bn", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def by_check(report):
    return {f.check: f for f in report.findings}


def test_bnviz_scratch_bn_agrees_everywhere(tmp_path):
    p = write(tmp_path, "mine.py", "from bnviz.norms import BatchNormScratch as BatchNorm\n")
    report = check_batchnorm(load_class(f"{p}:BatchNorm"))
    assert report.ok, report.text()
    assert "d2l's convention" in report.constructor
    assert report.names["running mean"] == "running_mean (buffer)"
    assert report.momentum == pytest.approx(0.1, abs=1e-5)
    assert report.running_var.startswith("unbiased") and report.replica_keeps_stats is True
    assert len(report.findings) >= 12
    assert all(f.diff < 1e-5 for f in report.findings if f.diff is not None)


def test_nn_batchnorm_itself_is_built_pytorch_style_and_agrees():
    report = check_batchnorm(nn.BatchNorm2d)
    assert "BatchNorm2d(num_features), PyTorch's convention" == report.constructor
    # nn.BatchNorm2d is conv-only: the FC shape is the one thing reported as differing
    assert report.failed() == ["forward, FC (8, 4)"]
    assert by_check(report)["train output, conv (4, 4, 5, 5)"].diff == 0.0


# The chapter's code as printed (d2l-en §8.5 / zh §7.5): it takes its training path only
# where autograd is on (`torch.is_grad_enabled()`), its prediction path under torch.no_grad.
BOOK_AS_PRINTED = '''
# The BatchNorm module d2l's chapter writes from scratch (English/Chinese editions, §8.5/7.5).
import torch
from torch import nn


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    if not torch.is_grad_enabled():
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        X_hat = (X - mean) / torch.sqrt(var + eps)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
        moving_var = momentum * moving_var + (1.0 - momentum) * var
    Y = gamma * X_hat + beta
    return Y, moving_mean.data, moving_var.data


class BatchNorm(nn.Module):
    def __init__(self, num_features, num_dims):
        super().__init__()
        if num_dims == 2:
            shape = (1, num_features)
        else:
            shape = (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    def forward(self, X):
        if self.moving_mean.device != X.device:
            self.moving_mean = self.moving_mean.to(X.device)
            self.moving_var = self.moving_var.to(X.device)
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean,
            self.moving_var, eps=1e-5, momentum=0.9)
        return Y
'''


def test_the_book_code_as_printed_is_checked_in_training_with_autograd_on(tmp_path):
    p = write(tmp_path, "d2l_bn.py", BOOK_AS_PRINTED)
    report = check_batchnorm(load_class(f"{p}:BatchNorm"))
    f = by_check(report)
    assert report.momentum == pytest.approx(0.1, abs=1e-5)  # it moves: a training step
    assert report.running_var.startswith("biased")
    assert report.replica_keeps_stats is False and "LOST" in \
        f["DataParallel replica, FC (8, 4)"].detail
    assert f["train output, FC (8, 4)"].ok and f["eval output, conv (4, 4, 5, 5)"].ok


def test_the_book_module_loses_its_statistics_on_a_replica(tmp_path):
    p = write(tmp_path, "book.py", "from bnviz.norms import BookBatchNorm as BatchNorm\n")
    code, out = cli(f"{p}:BatchNorm")
    assert code == 1 and "Traceback" not in out
    assert "LOST" in out and "DataParallel" in out
    report = check_batchnorm(load_class(f"{p}:BatchNorm"))
    f = by_check(report)
    assert report.replica_keeps_stats is False and not f["DataParallel replica, FC (8, 4)"].ok
    assert report.names["gamma"] == "gamma (Parameter)"
    assert report.names["running mean"].startswith("moving_mean (plain tensor attribute")
    assert not f["running statistics in state_dict"].ok
    # momentum 0.1 on the new batch (PyTorch's convention), biased running variance
    assert report.momentum == pytest.approx(0.1, abs=1e-5)
    assert "PyTorch's convention" in report.convention
    assert report.running_var.startswith("biased")
    assert not f["running statistics, FC (8, 4)"].ok
    # the biased variance is off by the factor n/(n−1) on each batch's share: at n = 8 the
    # difference is visible, at n = 100 (conv) smaller
    assert f["running statistics, FC (8, 4)"].diff > f["running statistics, conv (4, 4, 5, 5)"
                                                       ].diff > 1e-3
    # what it computes from given statistics is right: only how it keeps them is not
    for check in ("train output", "eval output", "gradients", "batch size 1"):
        assert f[f"{check}, FC (8, 4)"].ok and f[f"{check}, conv (4, 4, 5, 5)"].ok


def test_d2l_zh_momentum_is_named_so_and_a_batch_of_one_poisons_unbiased_stats():
    class ZhBatchNorm(nn.Module):  # momentum=0.9 on the old value, as d2l zh writes it
        def __init__(self, num_features, num_dims):
            super().__init__()
            shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
            self.gamma, self.beta = nn.Parameter(torch.ones(shape)), nn.Parameter(
                torch.zeros(shape))
            self.register_buffer("moving_mean", torch.zeros(shape))
            self.register_buffer("moving_var", torch.ones(shape))
            self.momentum = 0.9

        def forward(self, x):
            axes = (0,) if x.dim() == 2 else (0, 2, 3)
            if not self.training:
                mean, var = self.moving_mean, self.moving_var
            else:
                mean = x.mean(dim=axes, keepdim=True)
                var = x.var(dim=axes, keepdim=True, unbiased=False)
                n = x.numel() // x.shape[1]
                with torch.no_grad():
                    self.moving_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)
                    self.moving_var.mul_(self.momentum).add_(
                        (1 - self.momentum) * var * n / (n - 1))
            return self.gamma * (x - mean) / torch.sqrt(var + 1e-5) + self.beta

    report = check_batchnorm(ZhBatchNorm)
    assert "momentum=0.9 on the old value (d2l zh's way)" in report.convention
    # n / (n − 1) with n = 1: the running variance becomes inf, the one thing that differs
    assert report.failed() == ["batch size 1, FC (8, 4)"], report.text()
    assert "running statistics became NaN or inf" in report.findings[3].detail


def test_keras_momentum_is_detected():
    report = check_batchnorm(lambda c: nn.BatchNorm1d(c, momentum=0.01))
    assert report.momentum == pytest.approx(0.01, abs=1e-5)
    assert "Keras's convention" in report.convention
    assert not by_check(report)["running statistics, FC (8, 4)"].ok


def test_a_wrong_module_has_each_mistake_found_by_name(tmp_path):
    p = write(tmp_path, "wrong.py", WRONG)
    code, out = cli(f"{p}:BatchNorm")
    assert code == 1 and "Traceback" not in out
    report = check_batchnorm(load_class(f"{p}:BatchNorm"))
    f = by_check(report)
    fc, conv = f["train output, FC (8, 4)"], f["train output, conv (4, 4, 5, 5)"]
    assert not fc.ok and "no eps" in fc.detail
    assert not conv.ok and "statistics over N only" in conv.detail
    assert "never move" in report.convention
    assert not f["running statistics, FC (8, 4)"].ok
    assert not f["eval output after 3 training steps, FC (8, 4)"].ok
    # where it is right, it is reported right: eval mode with given statistics
    assert f["eval output, FC (8, 4)"].ok and f["eval output, conv (4, 4, 5, 5)"].ok
    # without eps a batch of one is 0 / 0
    assert not f["batch size 1, FC (8, 4)"].ok and "NaN" in f["batch size 1, FC (8, 4)"].detail
    # the gradients follow the wrong formulas, so they differ too
    assert not f["gradients, conv (4, 4, 5, 5)"].ok and not f["gradients, FC (8, 4)"].ok


def test_names_are_found_whatever_they_are_called():
    class Odd(nn.Module):
        def __init__(self, num_features):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(num_features))
            self.shift = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("mu", torch.zeros(num_features))
            self.register_buffer("sigma2", torch.ones(num_features))

    n = find_names(Odd(4))
    assert (n.gamma, n.beta, n.mean, n.var) == ("scale", "shift", "mu", "sigma2")


NO_CTOR = """from torch import nn
class BN(nn.Module):
    def __init__(self, a, b, c):
        super().__init__()
"""
RAISES = """from torch import nn
class BN(nn.Module):
    def __init__(self, n, d):
        super().__init__()
    def forward(self, x):
        raise RuntimeError("not written yet")
"""
BAD_INPUT = [  # (file written, or None for none; its text; the target's tail; the message)
    (None, None, "missing.py:BatchNorm", "no such file: "),
    ("syntax.py", "def broken(:\n", "syntax.py:BatchNorm", "does not import: SyntaxError"),
    ("boom.py", "import no_such_module_anywhere\n", "boom.py:BatchNorm",
     "does not import: ModuleNotFoundError: No module named 'no_such_module_anywhere'"),
    ("other.py", "from torch import nn\nclass Mine(nn.Module): pass\n", "other.py:BatchNorm",
     "has no 'BatchNorm'; its nn.Module classes: Mine"),
    ("ctor.py", NO_CTOR, "ctor.py:BN", "cannot construct it: BN(4, 2): TypeError"),
    ("fwd.py", RAISES, "fwd.py:BN",
     "its forward raises: FC: RuntimeError: not written yet; conv: RuntimeError"),
    (None, None, "no-colon.py", "expected path/to/file.py:ClassName"),
]


@pytest.mark.parametrize("name, text, target, message", BAD_INPUT,
                         ids=[t for _, _, t, _ in BAD_INPUT])
def test_unusable_input_gets_one_line_and_exit_2(tmp_path, name, text, target, message):
    if name:
        write(tmp_path, name, text)
    code, out = cli(target if ":" not in target else f"{tmp_path}/{target}")
    assert code == 2 and "Traceback" not in out, out
    assert message in out and len(out.strip().splitlines()) == 1, out


def test_main_returns_the_exit_codes(tmp_path, capsys):
    p = write(tmp_path, "mine.py", "from bnviz.norms import BatchNormScratch\n")
    assert main(["check-bn", f"{p}:BatchNormScratch"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("checks agree with nn.BatchNorm") and "DIFF" not in out
    p = write(tmp_path, "book.py", "from bnviz.norms import BookBatchNorm\n")
    assert main(["check-bn", f"{p}:BookBatchNorm"]) == 1
    assert ". Differs: running statistics, FC (8, 4); " in capsys.readouterr().out
    p = write(tmp_path, "exits.py", "import sys\nsys.exit('no BN here')\n")
    assert main(["check-bn", f"{p}:BatchNorm"]) == 2
    assert "does not import: SystemExit: no BN here" in capsys.readouterr().err


def test_a_hosted_server_refuses_to_run_code(tmp_path, monkeypatch):
    p = write(tmp_path, "mine.py", "raise SystemExit('must not run')\n")
    monkeypatch.setenv("BNVIZ_HOSTED", "1")
    with pytest.raises(CheckError, match="local only"):
        load_class(f"{p}:BatchNorm")
    assert main(["check-bn", f"{p}:BatchNorm"]) == 2
