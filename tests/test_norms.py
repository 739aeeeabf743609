import torch
from torch import nn

from bnviz.norms import BatchNormScratch, GhostBatchNorm, batch_stats, make_norm


def test_conv_stats_are_per_channel_over_n_h_w():
    x = torch.randn(8, 3, 5, 5)
    mean, var = batch_stats(x)
    assert mean.shape == (1, 3, 1, 1)
    assert torch.allclose(mean.flatten(), x.permute(1, 0, 2, 3).reshape(3, -1).mean(1))
    assert torch.allclose(var.flatten(), x.permute(1, 0, 2, 3).reshape(3, -1).var(1, unbiased=False))


def test_scratch_matches_torch_in_train_and_eval():
    torch.manual_seed(0)
    for shape, ref_cls in (((16, 6, 7, 7), nn.BatchNorm2d), ((16, 20), nn.BatchNorm1d)):
        c = shape[1]
        ref = ref_cls(c, eps=1e-5, momentum=0.1)
        mine = BatchNormScratch(c, len(shape), momentum=0.1, eps=1e-5)
        with torch.no_grad():
            g, b = torch.rand(c) + 0.5, torch.randn(c)
            ref.weight.copy_(g); ref.bias.copy_(b)
            mine.weight.copy_(g.view_as(mine.weight)); mine.bias.copy_(b.view_as(mine.bias))
        for _ in range(3):
            x = torch.randn(shape) * 3 + 1
            assert torch.allclose(mine(x), ref(x), atol=1e-5)
        assert torch.allclose(mine.running_mean.flatten(), ref.running_mean, atol=1e-6)
        assert torch.allclose(mine.running_var.flatten(), ref.running_var, atol=1e-5)
        mine.eval(); ref.eval()
        x = torch.randn(shape)
        assert torch.allclose(mine(x), ref(x), atol=1e-5)


def test_scratch_batch_of_one_normalises_fc_to_exactly_zero():
    bn = BatchNormScratch(10, 2)
    out = bn(torch.randn(1, 10) * 5)
    assert torch.equal(out, torch.zeros(1, 10))  # gamma * 0 + beta(=0)
    # a conv layer still has H*W values per channel at N=1, so it does not collapse
    conv = BatchNormScratch(3, 4)
    assert conv(torch.randn(1, 3, 4, 4)).abs().sum() > 0


def test_ghost_equals_separate_bn_on_each_slice():
    torch.manual_seed(1)
    for kind in ("bn", "bn_scratch"):
        for dims, shape in ((4, (12, 4, 3, 3)), (2, (12, 7))):
            ghost = make_norm(kind, shape[1], dims, slices=3)
            assert isinstance(ghost, GhostBatchNorm)
            x = torch.randn(shape)
            out = ghost(x)
            for part_x, part_out in zip(x.chunk(3), out.chunk(3)):
                mean, var = batch_stats(part_x)
                assert torch.allclose(part_out, (part_x - mean) / torch.sqrt(var + 1e-5), atol=1e-5)
            # and they differ from whole-batch statistics
            mean, var = batch_stats(x)
            assert not torch.allclose(out, (x - mean) / torch.sqrt(var + 1e-5), atol=1e-3)


def test_ghost_running_stats_follow_slice_zero():
    ghost = make_norm("bn", 4, 2, slices=2, momentum=1.0)
    x = torch.randn(10, 4)
    ghost(x)
    assert torch.allclose(ghost.inner.running_mean, x[:5].mean(0), atol=1e-6)
