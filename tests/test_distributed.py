"""Two processes (tools/dist_train.sh, dist_test.sh: torchrun, gloo on CPU)
give what one process gives: QAT losses and weights at the same total
batch, and QANN / SNN metrics of tools/test.py --compare (the conversion
runs on the model inside the DDP wrapper)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, START_ABORT, tiny_cls_config
from mmengine.config import Config
from mmengine.runner import Runner

TESTS = osp.join(REPO, 'tests')
TOTAL_BATCH = 8
# gradients of two half batches averaged by DDP equal the full batch's up to
# float summation order: after 4 AdamW steps the largest weight difference
# measured 8.9e-8 and the largest relative loss difference 8.6e-8
WEIGHT_ATOL = 1e-5
LOSS_RTOL = 1e-6


def _env():
    """No PORT: tools/launch_ranks.py serves the ranks' store on a port the
    system picks and keeps it for the run (a free port picked here and
    released could be taken before the run binds it)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, TESTS]),
               OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.pop('PORT', None)
    return env




def _run(cmd):
    for attempt in range(2):
        out = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True,
                             text=True, timeout=300)
        started = 'Epoch(train)' in out.stdout or 'Iter(' in out.stdout
        if out.returncode == 0 or START_ABORT not in out.stderr or started:
            break
        if '--work-dir' in cmd:  # nothing recorded yet; start clean
            probe = osp.join(cmd[cmd.index('--work-dir') + 1], 'losses.jsonl')
            if osp.exists(probe):
                os.remove(probe)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    return out


def _ddp_cfg(data_root, work_dir, per_process_batch):
    """4 QAT iterations on 16 crops with nothing random per sample and BN
    in eval mode: torch's SyncBatchNorm refuses CPU tensors, and per-rank
    BN statistics of half batches differ from the full batch's by design.
    """
    cfg = tiny_cls_config(data_root, work_dir)
    cfg.model.backbone.norm_eval = True
    loader = cfg.train_dataloader
    loader.batch_size = per_process_batch
    loader.dataset.indices = 16
    loader.dataset.pipeline = [dict(type='LoadImageFromFile'),
                               dict(type='PackInputs')]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2)
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.custom_imports = dict(imports=['fastsnn_mm', 'train_probe_hooks'])
    cfg.custom_hooks = [dict(type='RandomStateHook'),
                        dict(type='LossRecorderHook')]
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'cfg.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def trained(tiny_voc, tmp_path_factory, one_thread):
    """The same QAT once on one process (this one) and once on two."""
    one = str(tmp_path_factory.mktemp('one_process'))
    two = str(tmp_path_factory.mktemp('two_processes'))
    Runner.from_cfg(Config.fromfile(
        _ddp_cfg(tiny_voc, one, TOTAL_BATCH))).train()
    _run(['tools/dist_train.sh', _ddp_cfg(tiny_voc, two, TOTAL_BATCH // 2),
          '2', '--work-dir', two])
    return one, two


def _losses(work_dir):
    with open(osp.join(work_dir, 'losses.jsonl')) as f:
        return [json.loads(line)['loss'] for line in f]


def test_two_processes_train_as_one(trained):
    one, two = trained
    want, got = _losses(one), _losses(two)
    assert len(want) == len(got) == 4
    assert got == pytest.approx(want, rel=LOSS_RTOL)
    a = torch.load(osp.join(one, 'epoch_2.pth'), weights_only=False)
    b = torch.load(osp.join(two, 'epoch_2.pth'), weights_only=False)
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=0,
                                   atol=WEIGHT_ATOL, msg=key)
    assert a['meta']['iter'] == 4
    # RandomStateHook gathered every rank's generators into the checkpoint
    assert len(a['random_states']) == 1 and len(b['random_states']) == 2


def test_two_processes_test_qann_and_snn_as_one(trained, tmp_path):
    one, _ = trained
    cfg, ckpt = osp.join(one, 'cfg.py'), osp.join(one, 'epoch_2.pth')
    args = ['--compare', '--neuron', 'signed', 'unsigned']
    _run([sys.executable, 'tools/test.py', cfg, ckpt, *args, '--work-dir',
          str(tmp_path / 'one'), '--out-json', str(tmp_path / 'one.json')])
    _run(['tools/dist_test.sh', cfg, ckpt, '2', *args, '--work-dir',
          str(tmp_path / 'two'), '--out-json', str(tmp_path / 'two.json')])
    want = json.loads((tmp_path / 'one.json').read_text())
    got = json.loads((tmp_path / 'two.json').read_text())
    assert [r['model'] for r in want] == ['QANN', 'SNN', 'SNN']
    assert got == want  # counts of correct crops: exact


@pytest.mark.parametrize('script,args',
                         [('tools/dist_train.sh', ['cfg.py']),
                          ('tools/dist_test.sh', ['cfg.py', '2'])])
def test_scripts_name_their_arguments(script, args):
    out = subprocess.run([script, *args], cwd=REPO, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and out.stderr.startswith('usage:')
    assert 'CONFIG' in out.stderr and ' N ' in out.stderr
