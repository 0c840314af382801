"""What every fine-tuning stage needs to take optimizer steps: the data
stream of a stage, the optimizer, one step with its progress line.

Each stage's stream and random state are set from (seed, stage index), so
an interrupted and resumed run repeats an uninterrupted one. Under DDP each
rank steps on its shard of the batch and gradients are averaged over
ranks, so every rank keeps the same weights.
"""
import copy
import time

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.runner import set_random_seed


def reduce_over_ranks(value, op='mean'):
    """A float averaged (or summed) over ranks; itself in one process."""
    t = torch.tensor([float(value)], dtype=torch.float64)
    all_reduce(t, op=op)  # in place; a no-op without a process group
    return t.item()


def preprocess(model, data, training=False):
    """A dataloader batch as the model's inputs tensor."""
    data = model.data_preprocessor(data, training)
    return data['inputs'] if isinstance(data, dict) else data[0]


class StageTrainer:
    """Optimizer steps for the stages, counted across all of them.

    Args:
        runner: the mmengine runner (optimizer config, seed, logger).
        dataloader: the training batches.
        log_interval (int): a progress line every this many steps.
    """

    def __init__(self, runner, dataloader, log_interval):
        self.runner = runner
        self.dataloader = dataloader
        self.log_interval = log_interval
        self.iter = 0
        self.max_iters = 0
        self._clock = (time.time(), 0)

    def start_clock(self):
        """From now on the ETA counts the steps taken since this call."""
        self._clock = (time.time(), self.iter)

    def stream(self, stage):
        """Train batches for one stage, the same on every run and rank."""
        runner = self.runner
        set_random_seed(runner.seed + stage)
        sampler = getattr(self.dataloader, 'sampler', None)
        if hasattr(sampler, '_indices_of_rank'):
            # mmengine's InfiniteSampler makes its index generator once, and
            # closing an earlier group's iterator closes it for good; a
            # fresh one per group (seeded by the group) keeps the stream
            # infinite and repeatable. No public API does this.
            sampler.seed = runner.seed + stage
            sampler.indices = sampler._indices_of_rank()
        elif hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(stage)
        while True:
            empty = True
            for data in self.dataloader:
                empty = False
                yield data
            if empty:
                raise RuntimeError('the train dataloader yields no batches')

    def build_optim(self, lr):
        """The configured optimizer wrapper, its lr replaced by ``lr``
        (None: as configured)."""
        cfg = copy.deepcopy(self.runner.cfg.optim_wrapper)
        if lr is not None:
            cfg.optimizer.lr = lr
        self.runner.optim_wrapper = self.runner.build_optim_wrapper(cfg)
        return self.runner.optim_wrapper

    def step(self, optim, loss, params, head, step, total, extra=''):
        """One optimizer step (gradients averaged over ranks) and, every
        ``log_interval`` steps, a progress line starting with ``head``."""
        optim.backward(loss)
        if get_world_size() > 1:
            for p in params:
                if p.grad is not None:
                    all_reduce(p.grad, op='mean')
        optim.step()
        optim.zero_grad()
        self.iter += 1
        runner = self.runner
        runner.message_hub.update_scalar('train/loss', loss.item())
        if (step + 1) % self.log_interval == 0 or step + 1 == total:
            start, first = self._clock
            eta = (time.time() - start) / max(self.iter - first, 1) * (
                self.max_iters - self.iter)
            runner.logger.info(
                f'{head} iter {step + 1}/{total} (total {self.iter}/'
                f'{self.max_iters}, eta {eta / 60:.1f} min): loss '
                f'{loss.item():.5f}{extra}')
