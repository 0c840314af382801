"""Kill and resume: a QAT run SIGKILLed mid-epoch and restarted with
``--resume`` repeats the losses and weights of a run never stopped
(RandomStateHook), and ``--resume`` never picks a checkpoint cut short."""
import json
import os
import os.path as osp
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import train_probe_hooks  # noqa: F401  (registers the hooks in-process)
from conftest import REPO, tiny_cls_config
from mmengine.runner import Runner

from fastsnn_mm.engine.hooks.random_state_hook import (
    capture_random_states,
    restore_random_states,
)
from fastsnn_mm.utils.launch import find_resumable_checkpoint

TESTS = osp.join(REPO, 'tests')
EPOCHS = 3


def _resume_cfg(data_root, work_dir, hooks=('RandomStateHook', ), **kw):
    """3-bit QAT of the tiny classifier: 3 epochs of 3 iterations. The
    train pipeline's random crop and flip draw from numpy in the main
    process (or a worker), the head's dropout from torch."""
    cfg = tiny_cls_config(data_root, work_dir, **kw)
    cfg.model.head = dict(type='StackedLinearClsHead',
                          num_classes=cfg.model.head.num_classes,
                          in_channels=64, mid_channels=[32],
                          dropout_rate=0.5, loss=cfg.model.head.loss)
    cfg.train_dataloader.batch_size = 12
    cfg.train_dataloader.dataset.indices = 36
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.custom_imports = dict(imports=['fastsnn_mm', 'train_probe_hooks'])
    cfg.custom_hooks = [dict(type=h) for h in hooks] + [
        dict(type='LossRecorderHook')]
    return cfg


def _losses(work_dir):
    """iteration -> loss; a repeated iteration (redone after a resume)
    keeps its last value."""
    with open(osp.join(work_dir, 'losses.jsonl')) as f:
        return {r['iter']: r['loss'] for r in map(json.loads, f)}


def _weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)[
        'state_dict']


def _train(config, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, TESTS]),
               OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/train.py'), config, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _run_in_process(cfg):
    Runner.from_cfg(cfg).train()


@pytest.fixture(scope='module')
def unbroken(tiny_voc, tmp_path_factory, one_thread):
    """The run never stopped (in this process, on one thread, as the
    subprocesses below run)."""
    work = tmp_path_factory.mktemp('unbroken')
    _run_in_process(_resume_cfg(tiny_voc, work))
    return work


def test_sigkill_mid_epoch_then_resume_repeats_unbroken_run(
        tiny_voc, tmp_path, unbroken):
    iters_per_epoch = 3
    # iterations count from 0: this is the second one of epoch 3
    kill_at = 2 * iters_per_epoch + 1
    work = tmp_path / 'killed'
    cfg = _resume_cfg(tiny_voc, work,
                      hooks=('RandomStateHook', 'SigkillAtIterHook'))
    cfg.custom_hooks[1]['at_iter'] = kill_at
    os.makedirs(work)
    cfg.dump(str(work / 'cfg.py'))

    killed = _train(str(work / 'cfg.py'))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert osp.isfile(work / 'epoch_2.pth')
    assert not osp.exists(work / 'epoch_3.pth')
    assert max(_losses(work)) == kill_at - 1  # it trained part of epoch 3
    # as if it had also died while writing the next checkpoint: a file cut
    # short that last_checkpoint names; --resume must pass it over
    with open(work / 'epoch_2.pth', 'rb') as f:
        head = f.read(4096)
    (work / 'epoch_3.pth').write_bytes(head)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_3.pth'))

    resumed = _train(str(work / 'cfg.py'), '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'epoch_3.pth' in resumed.stderr and 'resuming from' in \
        resumed.stderr and 'epoch_2.pth' in resumed.stderr

    want, got = _losses(unbroken), _losses(work)
    assert len(want) == EPOCHS * iters_per_epoch
    later = range(2 * iters_per_epoch, EPOCHS * iters_per_epoch)
    # one thread, same code path: equal to the last bit
    assert [got[i] for i in later] == [want[i] for i in later]
    a = _weights(unbroken / 'epoch_3.pth')
    b = _weights(work / 'epoch_3.pth')
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _resume_in_process(data_root, unbroken, work, **kw):
    """Train epoch 3 again from the unbroken run's epoch_2.pth."""
    cfg = _resume_cfg(data_root, work, resume=True,
                      load_from=str(unbroken / 'epoch_2.pth'), **kw)
    _run_in_process(cfg)
    return _losses(work)


def test_resume_with_a_data_worker_repeats_unbroken_run(tiny_voc, tmp_path,
                                                        one_thread):
    """Augmentation drawn in a worker process (mmengine reseeds workers
    every epoch; the DataLoader's draw for them comes from the main
    process's torch generator, which the hook restores)."""
    def cfg_with_worker(work, **kw):
        cfg = _resume_cfg(tiny_voc, work, **kw)
        cfg.train_dataloader.num_workers = 1
        return cfg

    _run_in_process(cfg_with_worker(tmp_path / 'a'))
    _run_in_process(cfg_with_worker(
        tmp_path / 'b', resume=True,
        load_from=str(tmp_path / 'a' / 'epoch_2.pth')))
    want, got = _losses(tmp_path / 'a'), _losses(tmp_path / 'b')
    assert sorted(got) == [6, 7, 8]
    assert [got[i] for i in got] == [want[i] for i in got]


def test_without_the_hook_resume_drifts(tiny_voc, tmp_path, unbroken):
    """The control: the same resume, minus RandomStateHook, does not repeat
    the unbroken run (so the tests above can fail)."""
    got = _resume_in_process(tiny_voc, unbroken, tmp_path, hooks=())
    want = _losses(unbroken)
    assert sorted(got) == [6, 7, 8]
    assert [got[i] for i in got] != [want[i] for i in got]


def test_iteration_loop_resume_repeats_unbroken_run(tiny_voc, tmp_path,
                                                    one_thread):
    """IterBasedTrainLoop replays the batches it trained on before going on;
    the states apply after that replay, and across an epoch boundary."""
    def cfg_for(work, **kw):
        cfg = _resume_cfg(tiny_voc, work, **kw)
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=7,
                             val_interval=4)
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                            by_epoch=False, interval=4)
        cfg.default_hooks.logger.log_metric_by_epoch = False
        return cfg

    _run_in_process(cfg_for(tmp_path / 'a'))
    _run_in_process(cfg_for(tmp_path / 'b', resume=True,
                            load_from=str(tmp_path / 'a' / 'iter_4.pth')))
    want, got = _losses(tmp_path / 'a'), _losses(tmp_path / 'b')
    assert sorted(got) == [4, 5, 6]  # 3 iterations an epoch: crosses one
    assert [got[i] for i in got] == [want[i] for i in got]


def test_random_states_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    saved = capture_random_states()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    restore_random_states(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def _zip_like_checkpoint(path, value):
    torch.save(dict(meta=dict(epoch=value)), path)


def test_resume_skips_a_checkpoint_cut_short(tmp_path, capsys):
    _zip_like_checkpoint(tmp_path / 'epoch_1.pth', 1)
    _zip_like_checkpoint(tmp_path / 'epoch_2.pth', 2)
    whole = (tmp_path / 'epoch_2.pth').read_bytes()
    (tmp_path / 'epoch_2.pth').write_bytes(whole[:len(whole) // 2])
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) == str(
        tmp_path / 'epoch_1.pth')
    err = capsys.readouterr().err
    assert 'epoch_2.pth' in err and 'resuming from' in err


def test_resume_with_no_whole_checkpoint_starts_afresh(tmp_path, capsys):
    # max_keep_ckpts=1: the old file was deleted before the new one was
    # written, and the kill came during that write
    (tmp_path / 'epoch_2.pth').write_bytes(b'PK\x03\x04 cut short')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) is None
    assert 'starts from the beginning' in capsys.readouterr().err
    assert find_resumable_checkpoint(str(tmp_path / 'nothing')) is None
