"""M LeNets trained as one batched model (bnviz/speed/batched.py) give each run's own numbers:
the same losses step by step as the run trained alone with bnviz.model's LeNet."""
import pytest
import torch
import torch.nn.functional as F

from bnviz import data
from bnviz.config import make_config
from bnviz.model import build_lenet
from bnviz.speed.batched import BatchedLeNet, batch_key, stack_batches

STEPS, BS = 12, 64


@pytest.fixture
def float64():
    """The arithmetic is compared in float64, where grouped convolutions and batched matrix
    products round too little to matter (1e-13 after 12 steps at lr 1). In float32 the runs
    agree to about 1e-6 at first, but at lr 1 with ReLU rounding grows chaotically (a few
    1e-3 after 8 steps), as between any two kernels that sum in different orders."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def dataset():
    ds = data.load("subset", 1024, torch.device("cpu"), 0)
    return type(ds)(ds.train_x.double(), ds.train_y, ds.test_x.double(), ds.test_y, ds.source,
                    ds.origin)


def alone(cfg, ds):
    net = build_lenet(cfg).train()
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    perm = torch.randperm(len(ds.train_y), generator=torch.Generator().manual_seed(cfg.seed))
    out = []
    for b in range(STEPS):
        idx = perm[b * BS:(b + 1) * BS]
        loss = F.cross_entropy(net(ds.train_x[idx]), ds.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out, net


@pytest.mark.parametrize("kw", [dict(), dict(norm="none", lr=0.5), dict(activation="relu"),
                                dict(norm_position="after_act"), dict(bias=False),
                                dict(norm_conv2=False, norm_fc2=False)])
def test_each_run_of_a_batch_matches_the_run_trained_alone(kw, float64):
    ds = dataset()
    base = make_config(dataset="subset", batch_size=BS, **kw)
    configs = [base.replace(seed=s, lr=base.lr * f) for s, f in ((0, 1.0), (1, 0.5), (2, 1.0))]
    model = BatchedLeNet(configs).train()
    perms = [torch.randperm(len(ds.train_y), generator=torch.Generator().manual_seed(c.seed))
             for c in configs]
    lrs = torch.tensor([c.lr for c in configs])
    batched = []
    for b in range(STEPS):
        x, y = stack_batches(ds.train_x, ds.train_y, [p[b * BS:(b + 1) * BS] for p in perms])
        out = model(x)
        model.zero_grad()
        model.loss(out, y).backward()
        model.sgd_step(lrs)
        batched.append(model.losses(out, y).tolist())
    for i, cfg in enumerate(configs):
        want, net = alone(cfg, ds)
        got = [row[i] for row in batched]
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12), cfg
        back = model.unbatch(i)
        for (name, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items()):
            assert torch.allclose(a.double(), b.double(), rtol=1e-7, atol=1e-9), name


def test_structural_differences_split_the_batch():
    base = make_config()
    assert batch_key(base) == batch_key(base.replace(seed=3, lr=0.1))
    for other in (dict(norm="none"), dict(norm_fc1=False), dict(activation="relu"),
                  dict(batch_size=128), dict(epochs=2)):
        assert batch_key(base) != batch_key(base.replace(**other)), other
    assert batch_key(base.replace(norm="bn_scratch")) is None  # not batchable (yet)
    with pytest.raises(ValueError):
        BatchedLeNet([base, base.replace(norm="none")])
