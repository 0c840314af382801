"""How one batch goes through its T steps on a device: the pass plan.

A plan says how many steps each call of the spiking path presents and
whether the batch runs in slices (:class:`PassPlan`). Each device kind has
one policy, an entry of :data:`POLICIES` that turns the sizing pass's
figures into two byte budgets: how large one time-folded activation may
be, and how much neuron state a streaming slice may keep. The choice of
steps and slices from those budgets is the same for every device
(:func:`plan_within`). A new device policy is a new entry, not a branch in
the runner.

Figures (``sizes``, from :func:`sizing.input_shape_info`): ``step_bytes``,
the bytes of the largest neuron input for one image and one step (what the
QANN holds at that layer per image); ``state_bytes``, the membrane and
count bytes all neurons keep for one image in streaming mode.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch

from .validation import MODES

#: CPU: by default folded mode presents as many steps per pass as keep each
#: time-folded activation under this size. Folding all T steps at once makes
#: every tensor T times the QANN's; past glibc's mmap threshold (32 MiB) each
#: one is fresh memory from the OS, and the page faults cost more than the
#: passes saved (measured in benchmarks/bench_snn.py). It also bounds memory.
#: Below that size glibc may still hand freed memory back to the OS; see
#: :mod:`fastsnn_mm.utils.allocator` for a process that can keep it.
FOLD_BYTES = 16 * 2**20

#: CPU: streaming mode keeps a membrane (and, signed, a count) for every
#: neuron of the network for the whole run: 5 bytes per activation of every
#: layer, where the QANN holds only the few activations alive at once. A
#: batch whose state would pass both this size and STATE_ACTIVATIONS times
#: the batch's largest activation (which the QANN itself must hold) runs in
#: slices, so peak memory stays within a small factor of the QANN's at any
#: batch size (measured in benchmarks/bench_snn.py).
STATE_BYTES = 4 * 2**20
STATE_ACTIVATIONS = 2

#: GPU: the default policy (:class:`QannBatchPolicy`) has each pass present
#: about this many QANN batches of work (image-steps).
DEVICE_PASS_OF_QANN = 1

#: GPU: never more than this share of the free device memory for the
#: largest time-folded activation (a pass holds a few such tensors at once).
DEVICE_FOLD_SHARE = 1 / 8

#: GPU: streaming slices the batch only when all neurons' state would pass
#: this share of the free device memory.
DEVICE_STATE_SHARE = 1 / 4

#: the policy of devices other than the CPU (CUDA, and ``meta`` standing in
#: for it); 'free-memory' trades memory for the fewest passes
ACCELERATOR_POLICY = 'qann-batch'


@dataclass(frozen=True)
class PassPlan:
    """How one batch goes through its T steps.

    steps: time steps each call of the path presents (1: streaming).
    per_slice: images per slice of the batch; None runs it whole.
    unsliced_steps: steps per call when the outputs turn out not to be
        sliceable (no batch axis).
    """
    steps: int
    per_slice: Optional[int] = None
    unsliced_steps: int = 1


@dataclass(frozen=True)
class Budgets:
    """Bytes a plan may spend: ``fold`` on the largest time-folded
    activation of a pass, ``state`` on a streaming slice's neuron state
    (``inf``: no limit)."""
    fold: float
    state: float


def device_free_bytes(device) -> Optional[int]:
    """Memory a run may still take on ``device``: free device memory plus
    what torch's caching allocator holds unused; None when unknown (no
    limit: the ``meta`` device, devices without a query)."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - \
        torch.cuda.memory_allocated(device)
    return free + max(cached, 0)


class CpuPolicy:
    """Small passes: memory traffic decides on a CPU (:data:`FOLD_BYTES`,
    :data:`STATE_BYTES`); free memory is not asked."""

    def budgets(self, timesteps, batch, sizes, free):
        state = max(STATE_BYTES, STATE_ACTIVATIONS * sizes['step_bytes']
                    * batch)
        return Budgets(FOLD_BYTES, state)


class FreeMemoryPolicy:
    """All T steps of the whole batch at once unless the largest folded
    activation would pass :data:`DEVICE_FOLD_SHARE` of the free device
    memory: the fewest passes (all T steps folded was 4-13x faster than the
    CPU plan on an H200 for QResNet-18), at up to T times the QANN's
    activation memory (~15x at T = 15)."""

    def budgets(self, timesteps, batch, sizes, free):
        if free is None:
            return Budgets(math.inf, math.inf)
        return Budgets(int(free * DEVICE_FOLD_SHARE),
                       int(free * DEVICE_STATE_SHARE))


class QannBatchPolicy(FreeMemoryPolicy):
    """Each pass presents about the QANN's own batch B: slices of
    round(B / T) images (at least one) with all T steps, so a pass folds
    B +- T/2 image-steps (:data:`DEVICE_PASS_OF_QANN` scales B), within
    free memory as :class:`FreeMemoryPolicy`.

    Why this bound costs little time: a pass already does a QANN batch's
    worth of work, which is what keeps the GPU busy in the QANN itself, and
    the whole run does the same T x B image-steps as T QANN passes, in
    about as many passes; folding more steps into one pass would add only
    memory (all T steps of B images is T times the QANN's activations).
    The largest activation alive stays within 1 + T / (2B) of the QANN's
    when B >= T / 2 (QResNet-18, T = 15: 30 image-steps against 32 at
    224 px, batch 32; 135 against 128 at 32 px, batch 128), and all steps
    of an image run in one pass, so no neuron state is kept between
    passes.
    """

    def budgets(self, timesteps, batch, sizes, free):
        memory = super().budgets(timesteps, batch, sizes, free)
        work = DEVICE_PASS_OF_QANN * batch
        images = max(1, math.floor(work / timesteps + 0.5))
        per_pass = images * timesteps * sizes['step_bytes']
        return Budgets(min(memory.fold, per_pass), memory.state)


#: policy name -> policy; :func:`plan_for` picks 'cpu' for the CPU and
#: :data:`ACCELERATOR_POLICY` for any other device
POLICIES = {'cpu': CpuPolicy(), 'free-memory': FreeMemoryPolicy(),
            'qann-batch': QannBatchPolicy()}


def plan_for(device, mode: str, timesteps: int, batch: int, sizes,
             free_bytes: Optional[int] = None) -> PassPlan:
    """The pass plan for a batch of ``batch`` inputs on ``device``.

    ``sizes``: the sizing pass's figures. ``free_bytes``: the device's free
    memory (default: queried, :func:`device_free_bytes`; None means no
    limit); the CPU policy ignores it.
    """
    device = torch.device(device)
    if device.type == 'cpu':
        policy, free = POLICIES['cpu'], None
    else:
        policy = POLICIES[ACCELERATOR_POLICY]
        free = device_free_bytes(device) if free_bytes is None \
            else free_bytes
    return plan_within(policy.budgets(timesteps, batch, sizes, free), mode,
                       timesteps, batch, sizes)


def plan_within(budgets: Budgets, mode, timesteps, batch, sizes) -> PassPlan:
    """Streaming: slices whose neuron state fits ``budgets.state``.
    Folded: the whole batch with all T steps if its largest activation fits
    ``budgets.fold``, else slices of the batch with all T steps, else the
    whole batch in chunks of steps."""
    T, step_bytes = timesteps, sizes['step_bytes']
    if mode == 'streaming':
        per_slice = _per_slice(budgets.state, sizes['state_bytes'], batch)
        return PassPlan(1, per_slice if per_slice < batch else None, 1)
    if step_bytes * T * batch <= budgets.fold:
        return PassPlan(T, None, T)
    chunk = _auto_chunk(step_bytes * batch, T, budgets.fold)
    per_slice = int(budgets.fold // max(step_bytes * T, 1))
    if per_slice >= 1:
        return PassPlan(T, per_slice, chunk)
    return PassPlan(chunk, None, chunk)


def asked_steps(time_chunk, mode: str, timesteps: int):
    """Steps per call the caller fixed: 1 (streaming), the chunk asked for
    (at most T), or None (folded: the device's plan decides)."""
    if time_chunk is None:
        return None if mode == 'folded' else 1
    return min(time_chunk, timesteps)


def streaming_slice(sizes, batch: int) -> int:
    """Images per streaming slice on the CPU for a batch of inputs of this
    shape (``sizes``: the sizing pass's figures)."""
    plan = plan_for('cpu', 'streaming', 1, batch, sizes)
    return batch if plan.per_slice is None else plan.per_slice


def slice_sizes(batch: int, per_slice: int):
    """Fewest slices of at most ``per_slice`` images, sizes within one."""
    n = -(-batch // per_slice)
    return [batch // n + (i < batch % n) for i in range(n)]


def _per_slice(budget, per_image, batch):
    if budget == math.inf:
        return batch
    return min(batch, max(1, int(budget // max(per_image, 1))))


def _auto_chunk(step_bytes, T, budget=None):
    """Steps per call keeping a folded activation of the whole batch under
    ``budget`` (default :data:`FOLD_BYTES`)."""
    budget = FOLD_BYTES if budget is None else budget
    if budget == math.inf:
        return T
    return max(1, min(T, int(budget // max(step_bytes, 1))))


__all__ = ['PassPlan', 'Budgets', 'POLICIES', 'MODES', 'plan_for',
           'plan_within', 'asked_steps', 'streaming_slice', 'slice_sizes',
           'device_free_bytes']
