"""The sparse and event-driven convs of benchmarks/bench_sparse_spikes.py
give the dense conv's output on sparse ternary spikes (tiny tensors; no
timing is asserted)."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))
import bench_sparse_spikes as bench  # noqa: E402

SPARSE = [name for name in bench.ALTERNATIVES if name != 'int8']


def spikes(shape, theta, seed):
    """+-theta or 0, about 20 % nonzero."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(-1, 2, shape, generator=g)
    return theta * (sign * (torch.rand(shape, generator=g) < 0.3)).float()


@pytest.mark.parametrize('name', SPARSE)
@pytest.mark.parametrize('k, stride, padding, bias', [
    (3, 1, 1, False), (3, 2, 1, True), (1, 2, 0, False), (1, 1, 0, True),
    (5, 3, 2, False)])
def test_sparse_conv_equals_dense(name, k, stride, padding, bias):
    torch.manual_seed(k + stride)
    conv = torch.nn.Conv2d(6, 5, k, stride, padding, bias=bias)
    x = spikes((3, 6, 9, 9), theta=0.75, seed=k * 10 + stride)
    with torch.no_grad():
        want = bench.dense_float32(conv)(x)
        got = bench.ALTERNATIVES[name](conv)(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_check_refuses_a_wrong_output():
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    x = spikes((1, 4, 5, 5), theta=1.0, seed=0)
    dense = bench.dense_float32(conv)
    with torch.no_grad(), pytest.raises(AssertionError, match='differs'):
        bench.check('wrong', dense, lambda x: dense(x) * 1.01, [x])


def test_bench_records_its_table_tiny(tmp_path, one_thread):
    md = tmp_path / 'RESULTS.md'
    total = bench.main(['--width', '4', '--size', '8', '--batch', '2',
                        '--timesteps', '2', '--repeats', '1',
                        '--alternatives', 'int8', 'tap-csr',
                        '--results', str(md)])
    assert set(total) == {'int8', 'tap-csr', 'best sparse'}
    text = md.read_text()
    assert 'sparse spike convs at T=2, batch 2' in text
    assert '| backbone.layer1.0.conv1 |' in text
    assert '| all spike-reading convs |' in text and 'Verdict:' in text
