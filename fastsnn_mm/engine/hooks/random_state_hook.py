"""Keep the random streams of a resumed run where an unbroken run has them.

mmengine's resume restores weights, optimizer, schedulers and the epoch /
iteration counters, and reseeds the runner; the random generators then
stand where a fresh run's do, not where the stopped run's did. Data order
survives (``DefaultSampler`` reseeds per epoch from ``seed + epoch``), but
augmentation drawn in the main process, dropout, and the per-epoch seed
the DataLoader draws for its workers do not: the measured symptom was a
different first loss after ``--resume`` and a different final score.
"""
import logging
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from ...registry import HOOKS

STATES_KEY = 'random_states'


def capture_random_states() -> dict:
    """This process's python, numpy, torch CPU and CUDA generator states.

    Only tuples, ints, floats and tensors, so a ``weights_only`` checkpoint
    load reads them back without any allow-list."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    states = dict(
        python=random.getstate(),
        numpy=dict(key=torch.from_numpy(key.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), gauss=float(gauss)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    """Put back what :func:`capture_random_states` returned."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    npy = states['numpy']
    np.random.set_state(('MT19937', npy['key'].numpy().astype(np.uint32),
                         npy['pos'], npy['has_gauss'], npy['gauss']))
    torch.set_rng_state(states['torch'].cpu())
    cuda = states.get('cuda')
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            torch.cuda.set_rng_state(cuda[0].cpu())


class _RestoreAfterReplay:
    """Wraps ``IterBasedTrainLoop.dataloader_iterator`` after a resume.

    On resume that loop replays the batches it already trained on (``next``
    ``skip`` times) before the first new one, and the replay draws from the
    generators again; the saved states must apply after it, right before the
    first new batch is fetched, which no hook point marks.
    """

    def __init__(self, iterator, skip: int, states: dict):
        self._iterator = iterator
        self._skip = skip
        self._states = states

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
        elif self._states is not None:
            restore_random_states(self._states)
            self._states = None
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every process's random states with each checkpoint; on resume,
    restore them where the stopped run stood.

    With it, and ``randomness=dict(seed=..., deterministic=True)``, a run
    killed at any point and restarted with ``--resume`` repeats the losses
    of a run that was never stopped, from its last checkpoint on. Add it to
    any mm config::

        custom_hooks = [dict(type='RandomStateHook')]

    What it does, and why there:

    - The states of all ranks (each draws its own augmentation) go into
      ``checkpoint['random_states']``, a list indexed by rank. mmengine
      saves on rank 0 only (``before_save_checkpoint`` runs there alone),
      so under DDP they are gathered just before ``CheckpointHook`` saves:
      at the end of each epoch, at an iteration where a checkpoint is due,
      and when validation starts (for best-score checkpoints). The
      priority, LOW, runs these before ``CheckpointHook`` (VERY_LOW).
    - ``after_load_checkpoint`` only keeps them: mmengine's resume may reseed
      after loading. They are put back in ``before_train`` (epoch loops)
      or, for iteration loops, after mmengine replays the batches already
      trained on. A ``load_from`` (not a resume) leaves the states alone.
    - Validation runs on a copy: the states are saved at ``before_val`` and
      put back at ``after_val``, so training draws the same numbers whether
      validation ran in between (an unbroken run) or not (a resumed one).

    Limits: workers of an epoch-based loop with ``persistent_workers=True``
    keep their own generators across epochs, which no checkpoint holds; the
    hook warns on resume (set ``persistent_workers=False`` for exact resume;
    mmengine then reseeds the workers every epoch). Resuming on another
    number of processes restores the ranks that exist in both and warns.
    """

    priority = 'LOW'

    def __init__(self):
        self._loaded = None  # (epoch, iter, states) of a loaded checkpoint
        self._outside_val = None  # training's states while validation runs
        self._gathered = None  # all ranks' states for the next save (DDP)
        self._training = False

    # saving ---------------------------------------------------------------
    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._gathered = None  # stale once training draws again

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if get_world_size() > 1 and _checkpoint_due_after_iter(runner):
            self._gathered = all_gather_object(capture_random_states())

    def after_train_epoch(self, runner) -> None:
        if get_world_size() > 1:
            self._gathered = all_gather_object(capture_random_states())

    def before_val(self, runner) -> None:
        if self._training:
            self._outside_val = capture_random_states()
            if get_world_size() > 1:
                self._gathered = all_gather_object(self._outside_val)

    def after_val(self, runner) -> None:
        if self._outside_val is not None:
            restore_random_states(self._outside_val)
            self._outside_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() == 1:
            states = [self._outside_val or capture_random_states()]
        else:
            states = self._gathered
        if states is None:
            print_log('RandomStateHook: a checkpoint saved outside the '
                      'points where the random states of all processes are '
                      'gathered holds none; resuming from it will not '
                      'repeat this run exactly', logger='current',
                      level=logging.WARNING)
            return
        checkpoint[STATES_KEY] = states

    # restoring ------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(STATES_KEY)
        meta = checkpoint.get('meta', {})
        self._loaded = None if states is None else (
            meta.get('epoch'), meta.get('iter'), states)

    def before_train(self, runner) -> None:
        self._training = True
        if self._loaded is None:
            return
        epoch, it, states = self._loaded
        self._loaded = None
        if (runner.epoch, runner.iter) != (epoch, it) or it == 0:
            return  # a load_from, not a resume: the run starts afresh
        mine = self._states_of_this_rank(states)
        if mine is None:
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
            loop.dataloader_iterator = _RestoreAfterReplay(
                loop.dataloader_iterator, runner.iter, mine)
        else:
            restore_random_states(mine)
            self._warn_persistent_workers(runner)
        print_log(f'RandomStateHook: random states of epoch {epoch}, '
                  f'iteration {it} restored', logger='current')

    def after_train(self, runner) -> None:
        self._training = False

    @staticmethod
    def _states_of_this_rank(states: list):
        rank, world = get_rank(), get_world_size()
        if len(states) != world:
            print_log(f'RandomStateHook: the checkpoint holds the random '
                      f'states of {len(states)} processes, this run has '
                      f'{world}; restored on ranks < {len(states)} only, so '
                      'the run will not repeat the stopped one exactly',
                      logger='current', level=logging.WARNING)
        return states[rank] if rank < len(states) else None

    @staticmethod
    def _warn_persistent_workers(runner) -> None:
        loader = runner.train_dataloader
        if loader.num_workers > 0 and loader.persistent_workers:
            print_log('RandomStateHook: persistent_workers=True keeps worker '
                      'random states that no checkpoint holds; augmentation '
                      'after this resume differs from an unbroken run (set '
                      'persistent_workers=False for an exact resume)',
                      logger='current', level=logging.WARNING)


def _checkpoint_due_after_iter(runner) -> bool:
    """Whether a ``CheckpointHook`` saves after this iteration (its own
    test in mmengine 0.10.7), so the gather runs only then."""
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook) and not hook.by_epoch and (
                hook.every_n_train_iters(runner, hook.interval,
                                         hook.save_begin)
                or (hook.save_last and hook.is_last_train_iter(runner))):
            return True
    return False
