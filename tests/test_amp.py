"""tools/train.py --amp: mmengine's AmpOptimWrapper, as mmdet's train
script."""
import importlib.util
import os
import sys

import pytest
import torch
from mmengine.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO,
                      'configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py')


def train_module():
    spec = importlib.util.spec_from_file_location(
        'fastsnn_train_tool', os.path.join(REPO, 'tools/train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_enable_amp_switches_the_optim_wrapper():
    train = train_module()
    cfg = Config.fromfile(CONFIG)
    optimizer = dict(cfg.optim_wrapper.optimizer)
    train.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert dict(cfg.optim_wrapper.optimizer) == optimizer  # kept
    assert 'dtype' not in cfg.optim_wrapper
    train.enable_amp(cfg, 'bfloat16')  # already AMP: only the dtype
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    bare = Config(dict(model=dict()))
    train.enable_amp(bare)
    assert bare.optim_wrapper.type == 'AmpOptimWrapper'


def run_main(monkeypatch, capsys, *args):
    train = train_module()
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', CONFIG, *args])
    with pytest.raises(SystemExit) as exit_:
        train.main()
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')
def test_amp_without_gpu_is_one_clear_error(monkeypatch, capsys):
    code, err = run_main(monkeypatch, capsys, '--amp')
    assert code == 2
    assert err.strip().splitlines() == [
        'error: --amp needs a CUDA GPU: mmengine 0.10.7\'s AmpOptimWrapper '
        'trains on GPU, NPU, MLU or MUSA only; drop --amp on this machine']
    code, err = run_main(monkeypatch, capsys, '--amp-dtype', 'bfloat16')
    assert code == 2 and 'applies with --amp only' in err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_amp_optim_wrapper_trains_qat_model_on_gpu(dtype):
    from mmengine.optim import AmpOptimWrapper

    from fastsnn_mm.models.backbones import QResNet
    from fastsnn_mm.quantization import QuantReLU
    torch.manual_seed(0)
    net = QResNet(depth=18, base_channels=8,
                  act_cfg=dict(type='QuantReLU', bits=3)).cuda()
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.01), dtype=dtype)
    alphas = [m.alpha for m in net.modules() if isinstance(m, QuantReLU)]
    before = [a.detach().clone() for a in alphas]
    x = torch.randn(4, 3, 32, 32, device='cuda')
    for _ in range(3):
        with wrapper.optim_context(net):
            loss = net(x)[-1].float().square().mean()
        wrapper.update_params(loss)
        assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(alphas, before))
