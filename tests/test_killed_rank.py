"""A rank SIGKILLed mid-run (issue 26, item 4), in a 2-process QAT run and
a 2-process layer-wise fine-tuning run started by tools/dist_train.sh:

* the other rank stops within :data:`STOP_BOUND_S` of the kill, and stderr
  holds one line naming the lost rank (tools/launch_ranks.py sees the death
  in ``waitid`` and stops the survivor; no traceback, no gloo timeout);
* nothing is left half-written: no temporary file, every checkpoint whole;
* ``--resume`` with two processes ends where a run never stopped ends
  (compared as tests/test_distributed.py and tests/test_finetune.py compare
  two processes with one: the same tolerances).

The kill comes from inside rank 1 (tests/train_probe_hooks.py), at a fixed
point of the run, with the time written beside it: a kill from outside,
after watching the log, lands at a point that depends on the machine's
load. Also: a rank that hangs (SIGSTOP) ends the run after the bounded
gloo timeout, and the launcher on its own, with ranks that import nothing.
"""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from conftest import REPO, tiny_cls_config
from finetune_helpers import finetune_cfg
from mmengine.config import Config
from mmengine.runner import Runner
from test_distributed import LOSS_RTOL, WEIGHT_ATOL, _ddp_cfg

TESTS = osp.join(REPO, 'tests')
#: seconds from the kill of rank 1 to the launcher's exit, rank 0 stopped
#: (measured 0.2-0.3 s on the 2-core machine; without the launcher's watch a
#: survivor blocked on a silent peer waits out gloo's timeout)
STOP_BOUND_S = 5.0
ITERS_PER_EPOCH = 4  # 16 crops, 2 per rank and iteration


def _launch(config, work, *args):
    """tools/dist_train.sh CONFIG 2; returns (exit code, stderr, seconds
    from the kill (if one was made) to the end of the run)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, TESTS]),
               OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.pop('PORT', None)  # the launcher keeps a port the system picks
    out = subprocess.run(['tools/dist_train.sh', str(config), '2',
                          '--work-dir', str(work), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    ended = time.time()
    marker = osp.join(work, 'killed_once')
    seconds = ended - float(open(marker).read()) \
        if osp.exists(marker) else None
    return out.returncode, out.stderr, seconds


def _assert_stopped_in_one_line(code, err, seconds, again='--resume'):
    assert code == 128 + signal.SIGKILL, err[-3000:]
    assert seconds is not None and seconds < STOP_BOUND_S, seconds
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith('error')]
    assert len(lines) == 1, err[-3000:]
    assert 'error: rank 1 (pid ' in lines[0], lines[0]
    for words in ('was killed by SIGKILL', 'stopping rank 0', again):
        assert words in lines[0], (words, lines[0])


def _assert_nothing_half_written(work):
    """No temporary file of an interrupted write, and every checkpoint (and
    the one ``last_checkpoint`` names) reads back whole."""
    left = glob.glob(osp.join(work, '**', '*.tmp'), recursive=True) + \
        glob.glob(osp.join(work, '**', '.*.tmp'), recursive=True)
    assert not left, left
    pths = glob.glob(osp.join(work, '*.pth'))
    assert pths
    for path in pths:
        with zipfile.ZipFile(path) as zf:  # a file cut short does not open
            assert zf.testzip() is None, path
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() in pths


# -- QAT -----------------------------------------------------------------
def _qat_cfg(data_root, work, per_process_batch, kill_at=None):
    """tests/test_distributed.py's 2 epochs of QAT, at 4 iterations an
    epoch and a checkpoint after each; ``kill_at``: rank 1 SIGKILLs itself
    before that iteration."""
    path = _ddp_cfg(data_root, work, per_process_batch)
    cfg = Config.fromfile(path)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    if kill_at is not None:
        cfg.custom_hooks.append(dict(type='SigkillAtIterHook',
                                     at_iter=kill_at, rank=1))
    cfg.dump(path)
    return path


def _losses(work):
    """iteration -> loss (averaged over ranks); an iteration trained again
    after a resume keeps its last value."""
    with open(osp.join(work, 'losses.jsonl')) as f:
        return {r['iter']: r['loss'] for r in map(json.loads, f)}


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=False)[
        'state_dict']


def test_qat_rank_killed_mid_epoch_then_resumed(tiny_voc, tmp_path,
                                                one_thread):
    kill_at = ITERS_PER_EPOCH + 1  # the second iteration of epoch 2
    work = tmp_path / 'two'
    config = _qat_cfg(tiny_voc, work, 2, kill_at=kill_at)

    code, err, seconds = _launch(config, work)
    _assert_stopped_in_one_line(code, err, seconds)
    _assert_nothing_half_written(work)
    assert osp.isfile(work / 'epoch_1.pth')
    assert not osp.exists(work / 'epoch_2.pth')
    assert max(_losses(work)) == kill_at - 1  # it trained part of epoch 2

    code, err, _ = _launch(config, work, '--resume')
    assert code == 0, err[-3000:]
    _assert_nothing_half_written(work)

    # the run never stopped: one process at the same total batch (equal to
    # two processes up to float summation order: tests/test_distributed.py)
    one = tmp_path / 'one'
    Runner.from_cfg(Config.fromfile(_qat_cfg(tiny_voc, one, 4))).train()
    want, got = _losses(one), _losses(work)
    assert sorted(got) == sorted(want) == list(range(2 * ITERS_PER_EPOCH))
    assert [got[i] for i in sorted(got)] == pytest.approx(
        [want[i] for i in sorted(want)], rel=LOSS_RTOL)
    a, b = _state(one / 'epoch_2.pth'), _state(work / 'epoch_2.pth')
    assert a.keys() == b.keys()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=WEIGHT_ATOL,
                                   msg=key)


# -- layer-wise fine-tuning ------------------------------------------------
#: layer groups done when rank 1 dies (after the progress save of the
#: second group; rank 0 may have been stopped while writing that one)
KILL_AFTER_SAVES = 2


@pytest.fixture(scope='module')
def qann(tiny_voc, tmp_path_factory):
    """A 2-bit tiny QResNet after one QAT epoch: what fine-tuning starts
    from (how well it is trained does not matter here)."""
    work = tmp_path_factory.mktemp('qann')
    cfg = tiny_cls_config(tiny_voc, work)
    cfg.model.quant = dict(bits=2, alpha=2.0)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    Runner.from_cfg(cfg).train()
    return str(work / 'epoch_1.pth')


def _report(work):
    with open(osp.join(work, 'layerwise_finetune.json')) as f:
        return json.load(f)


def test_finetune_rank_killed_mid_run_then_resumed(tiny_voc, qann, tmp_path,
                                                   one_thread):
    from fastsnn_mm.engine.loops.finetune_progress import (
        PROGRESS_FILE,
        FinetuneProgress,
    )
    work = tmp_path / 'two'
    cfg = finetune_cfg(tiny_voc, work, qann, world_size=2)
    cfg.custom_imports = dict(imports=['fastsnn_mm', 'train_probe_hooks'])
    cfg.custom_hooks = [dict(type='SigkillAfterProgressSaveHook',
                             saves=KILL_AFTER_SAVES, rank=1)]
    os.makedirs(work)
    config = work / 'cfg.py'
    cfg.dump(str(config))

    code, err, seconds = _launch(config, work)
    _assert_stopped_in_one_line(code, err, seconds)
    _assert_nothing_half_written(work)
    saved = FinetuneProgress.load(str(work / PROGRESS_FILE))
    assert 1 <= saved.progress.done <= KILL_AFTER_SAVES
    assert not glob.glob(str(work / 'snn_finetuned*.pth'))

    code, err, _ = _launch(config, work, '--resume')
    assert code == 0, err[-3000:]
    _assert_nothing_half_written(work)

    # the run never stopped, in one process (as tests/test_finetune.py)
    one = tmp_path / 'one'
    Runner.from_cfg(finetune_cfg(tiny_voc, one, qann)).train()
    want, got = _report(one), _report(work)
    assert [g['layer'] for g in got['groups']] == \
        [g['layer'] for g in want['groups']]
    assert [g['reverted'] for g in got['groups']] == \
        [g['reverted'] for g in want['groups']]
    for g, w in zip(got['groups'], want['groups']):
        assert [t['loss'] for t in g['tried']] == pytest.approx(
            [t['loss'] for t in w['tried']], rel=1e-4, abs=1e-6), g['layer']
    assert got['metric_after'] == pytest.approx(want['metric_after'])
    [a] = glob.glob(str(one / 'snn_finetuned*.pth'))
    [b] = glob.glob(str(work / 'snn_finetuned*.pth'))
    a, b = _state(a), _state(b)
    assert a.keys() == b.keys()
    for key, value in a.items():  # tolerance: float summation order
        assert torch.allclose(b[key], value, atol=1e-5, rtol=1e-4), key


def _rank_pid(launcher_pid, rank):
    """The pid of rank ``rank`` among the launcher's children (Linux)."""
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            with open(f'/proc/{pid}/environ', 'rb') as f:
                env = f.read().split(b'\0')
        except (OSError, ValueError, IndexError):
            continue
        if ppid == launcher_pid and f'RANK={rank}'.encode() in env:
            return int(pid)
    return None


@pytest.mark.skipif(not osp.isdir('/proc'), reason='finds ranks in /proc')
def test_qat_rank_that_hangs_ends_the_run_after_the_gloo_timeout(
        tiny_voc, tmp_path):
    """Rank 1 stopped (SIGSTOP: alive, silent) in epoch 2: rank 0 gives up
    after ``env_cfg.dist_cfg.timeout`` (5 s here), waits for a stop that
    does not come, says so in one line; the launcher stops rank 1."""
    from fastsnn_mm.utils.launch import AWAIT_STOP_S
    work = tmp_path / 'hang'
    config = _qat_cfg(tiny_voc, work, 2)
    cfg = Config.fromfile(config)
    cfg.train_cfg.max_epochs = 100  # longer than the test
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo', timeout=5))
    cfg.dump(config)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, TESTS]),
               OMP_NUM_THREADS='1', PYTHON=sys.executable)
    env.pop('PORT', None)
    run = subprocess.Popen(['tools/dist_train.sh', config, '2',
                            '--work-dir', str(work)], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    try:
        losses = work / 'losses.jsonl'
        deadline = time.time() + 120
        while not (losses.exists() and
                   len(losses.read_text().splitlines()) > ITERS_PER_EPOCH):
            assert run.poll() is None and time.time() < deadline
            time.sleep(0.05)
        rank1 = _rank_pid(run.pid, 1)  # the scripts exec the launcher
        os.kill(rank1, signal.SIGSTOP)
        stopped = time.time()
        err = run.communicate(timeout=120)[1]
        seconds = time.time() - stopped
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, err[-3000:]
    assert seconds < 5 + AWAIT_STOP_S + 10, seconds
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith('error')]
    assert len(lines) == 2, lines
    assert lines[0].startswith('error: rank 0: a collective with the other '
                               'ranks failed') and \
        'env_cfg.dist_cfg.timeout' in lines[0], lines[0]
    assert lines[1].startswith('error: rank 0 (pid ') and \
        'stopping rank 1' in lines[1], lines[1]
    assert _gone(rank1)
    _assert_nothing_half_written(work)


# -- the launcher alone (ranks that import nothing: seconds) ---------------
RANK_SCRIPT = '''
import os, signal, sys, time
rank = int(os.environ['RANK'])
open(os.path.join(sys.argv[1], f'rank{rank}.pid'), 'w').write(str(os.getpid()))
if rank == 1:
    time.sleep(0.5)
    if sys.argv[2] == 'kill':
        open(os.path.join(sys.argv[1], 'killed_once'), 'w').write(
            repr(time.time()))
        os.kill(os.getpid(), signal.SIGKILL)
    print('error: rank 1 says why itself', file=sys.stderr)
    sys.exit(int(sys.argv[2]))
time.sleep(120)  # rank 0 would wait on its peer
'''


def _launch_script(tmp_path, how):
    script = tmp_path / 'rank.py'
    script.write_text(RANK_SCRIPT)
    env = dict(os.environ)
    env.pop('PORT', None)
    started = time.time()
    out = subprocess.run([sys.executable, 'tools/launch_ranks.py', '2',
                          str(script), str(tmp_path), how], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=60)
    return out, time.time() - started


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_launcher_stops_the_others_when_one_is_killed(tmp_path):
    out, _ = _launch_script(tmp_path, 'kill')
    seconds = time.time() - float((tmp_path / 'killed_once').read_text())
    _assert_stopped_in_one_line(out.returncode, out.stderr, seconds,
                                again='run the same command again')
    assert _gone(int((tmp_path / 'rank0.pid').read_text()))


@pytest.mark.parametrize('code,said', [(2, 0), (1, 1)])
def test_launcher_passes_a_failed_ranks_exit_code_on(tmp_path, code, said):
    """Exit code 2 is a rank's own one-line error (the tools' ``fail``):
    the launcher adds no line; another code gets one, pointing above."""
    out, seconds = _launch_script(tmp_path, str(code))
    assert out.returncode == code, out.stderr
    assert seconds < 60
    lines = [line for line in out.stderr.splitlines()
             if line.startswith('error')]
    assert lines[0] == 'error: rank 1 says why itself'
    assert len(lines) == 1 + said, lines
    if said:
        assert lines[1].startswith('error: rank 1 (pid ') and \
            'exited with code 1 (its error is above); stopping rank 0' in \
            lines[1], lines[1]
    assert _gone(int((tmp_path / 'rank0.pid').read_text()))


def test_gloo_timeout_is_bounded_and_configurable():
    from fastsnn_mm.utils.launch import GLOO_TIMEOUT_S, gloo_timeout
    assert gloo_timeout(Config(dict())) == GLOO_TIMEOUT_S < 30 * 60
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='gloo',
                                                  timeout=20))))
    assert gloo_timeout(cfg) == 20
    cfg.env_cfg.dist_cfg.timeout = '20'
    with pytest.raises(SystemExit):
        gloo_timeout(cfg)
