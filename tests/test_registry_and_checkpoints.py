"""Registration across mm scopes and safe checkpoint loading (torch>=2.6)."""
import os
import pickle

import pytest
import torch
from conftest import tiny_cls_config

import fastsnn_mm  # noqa: F401
from fastsnn_mm import QuantReLU, SignedIFNeuron
from fastsnn_mm.utils import UnsafeCheckpointError


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_generic_modules_build_in_every_scope(scope):
    import importlib
    reg = importlib.import_module(f'{scope}.registry')
    from mmcv.cnn import ConvModule
    from mmengine.registry import DefaultScope
    q = reg.MODELS.build(dict(type='QuantReLU', bits=2))
    assert isinstance(q, QuantReLU) and q.bits == 2
    assert isinstance(reg.MODELS.build(dict(type='SignedIFNeuron')),
                      SignedIFNeuron)
    assert reg.MODELS.get('QResNet') is not None
    assert reg.HOOKS.get('FastSNNConversionHook') is not None
    assert reg.LOOPS.get('LayerwiseFinetuneLoop') is not None
    with DefaultScope.overwrite_default_scope(scope):
        conv = ConvModule(3, 4, 3, act_cfg=dict(type='QuantReLU', bits=3))
    assert isinstance(conv.activate, QuantReLU)


def test_task_wrappers_live_in_their_task_registries():
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    from mmseg.registry import MODELS as SEG
    assert CLS.get('FastSNNImageClassifier') is not None
    assert DET.get('FastSNNSingleStageDetector') is not None
    assert SEG.get('FastSNNEncoderDecoder') is not None


@pytest.fixture(scope='module')
def trained(tiny_voc, tmp_path_factory):
    """One epoch of the tiny classifier through mmengine's Runner."""
    from mmengine.runner import Runner
    work = tmp_path_factory.mktemp('cls_run')
    runner = Runner.from_cfg(tiny_cls_config(tiny_voc, work))
    runner.train()
    return tiny_voc, work, os.path.join(work, 'epoch_1.pth')


def test_runner_checkpoint_loads_and_resumes(trained):
    from mmengine.runner import Runner, load_checkpoint
    data_root, work, ckpt = trained
    ck = fastsnn_mm.utils.load_checkpoint_file(ckpt)
    assert ck['meta']['epoch'] == 1 and 'message_hub' in ck
    cfg = tiny_cls_config(data_root, work, resume=True, load_from=ckpt)
    cfg.train_cfg.max_epochs = 2
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.epoch == 2
    model = runner.model
    load_checkpoint(model, ckpt)  # the stock mm API, routed safely


class _Payload:
    def __reduce__(self):
        return (os.system, ('touch PAYLOAD_RAN',))


def test_crafted_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    from mmengine.runner import load_checkpoint
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Payload()}, bad)
    net = torch.nn.Linear(2, 2)
    with pytest.raises(UnsafeCheckpointError, match='system'):
        load_checkpoint(net, str(bad))
    assert not (tmp_path / 'PAYLOAD_RAN').exists()


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    bad = tmp_path / 'corrupt.pth'
    bad.write_bytes(b'not a checkpoint at all' * 10)
    with pytest.raises((RuntimeError, pickle.UnpicklingError),
                       match='corrupt|cannot read|refusing'):
        fastsnn_mm.utils.load_checkpoint_file(str(bad))
    with pytest.raises(FileNotFoundError):
        fastsnn_mm.utils.load_checkpoint_file(str(tmp_path / 'missing.pth'))
