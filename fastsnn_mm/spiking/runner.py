"""Run a network's spiking path over T time steps: the execution.

Words, one meaning each:

* **T** (``timesteps``): the time steps of the whole run; outputs are
  averaged over T.
* **steps**: the time steps one call of the path presents (1 in streaming
  mode, T when folded at once, fewer when chunked).
* **chunk** (``time_chunk``): the caller's bound on steps per call in
  folded mode; a run of T steps is then ceil(T / chunk) calls, the neuron
  state carried from one to the next.
* **slice**: a part of the batch (some images with all their steps) run on
  its own; samples are independent in inference, so outputs are joined.

Folded: the input is presented once with batch B; the first neuron expands
it to the call's steps, later layers see [steps*B, ...], and outputs are
averaged over T. Streaming: the path is called T times on the same input;
neurons keep state. How many steps and slices a batch takes is the
device's plan (:mod:`.plan`); what the neurons keep meanwhile and how it
resets is the run state's (:mod:`.run_state`); the checks of the arguments
are :mod:`.validation`'s. The neuron state is reset before every batch by
the runner, never left to the caller.
"""
from .functional import TimeAverage, cat_batches
from .input_checks import check_snn_input
from .plan import (
    MODES,
    PassPlan,
    asked_steps,
    plan_for,
    slice_sizes,
    streaming_slice,
)
from .run_state import TimestepRun, neurons_of, timestep_context, timestep_run
from .sizing import input_shape_info, remember_unsliceable
from .validation import check_snn_arguments

__all__ = ['run_timesteps', 'run_settings', 'run_settled', 'run_plan',
           'neurons_of', 'timestep_context',
           'timestep_run', 'TimestepRun', 'PassPlan', 'plan_for', 'MODES',
           'input_shape_info', 'slice_sizes', 'streaming_slice']


def run_timesteps(model, path, x, timesteps: int, mode: str = 'folded',
                  time_chunk: int = None):
    """Call ``path(x)`` as a T-step SNN and return outputs averaged over T.

    ``model`` is the module holding the neurons; ``path`` the callable that
    maps the (time-invariant) input to the last linear layers' outputs.
    ``time_chunk`` (folded mode) presents at most that many steps per call.
    None takes the device's plan (:func:`plan.plan_for`): on the CPU each
    folded activation stays under :data:`plan.FOLD_BYTES` (the whole batch
    with all T steps when it fits, else slices of the batch with all T
    steps, else the whole batch in chunks of steps; pass T or more to fold
    all steps at once), and streaming runs slices of the batch whose neuron
    state fits :data:`plan.STATE_BYTES`, or twice the batch's largest
    activation when that is more; on a GPU each pass presents about the
    QANN's batch, within free device memory. Plans that keep the batch
    whole give the same bits; slices agree to float rounding (see
    :func:`_in_slices`).
    """
    check_snn_arguments(timesteps, mode=mode, time_chunk=time_chunk,
                        timesteps_default=False)
    return run_settled(model, path, x, timesteps, mode, time_chunk)


def run_settings(model, path, x, settings):
    """:func:`run_timesteps` as an :class:`~.settings.SNNSettings` says:
    checked when they were made, read here (what converted models call)."""
    return run_settled(model, path, x, settings.timesteps, settings.mode,
                       settings.time_chunk)


def run_settled(model, path, x, timesteps: int, mode: str,
                time_chunk=None):
    """:func:`run_timesteps` on arguments checked already: the plan and
    the run state read them as they are."""
    check_snn_input(model, x)  # NaN/Inf or wrong channels: refused
    T, batch = timesteps, x.shape[0]
    steps = asked_steps(time_chunk, mode, T)
    if mode == 'folded' and steps is not None:
        return _run(model, path, x, T, mode, steps)
    if mode == 'streaming' and batch == 1:  # nothing to slice
        return _run(model, path, x, T, mode, 1)
    sizes = input_shape_info(model, path, x, T)
    plan = plan_for(x.device, mode, T, batch, sizes)
    return run_plan(model, path, x, T, mode, plan, sizes)


def run_plan(model, path, x, T, mode, plan: PassPlan, sizes):
    """Run one batch as ``plan`` says (slices fall back to whole-batch
    calls of ``plan.unsliced_steps`` steps when outputs cannot be cut)."""
    if plan.per_slice is not None:
        out = _in_slices(model, path, x, T, mode, plan.steps,
                         plan.per_slice, sizes)
        if out is not None:
            return out
        return _run(model, path, x, T, mode, plan.unsliced_steps)
    return _run(model, path, x, T, mode, plan.steps)


def _in_slices(model, path, x, T, mode, steps, per_slice, sizes):
    """The batch in consecutive slices of at most ``per_slice`` images,
    sizes balanced (32 by 12 -> 11, 11, 10), outputs joined; None when
    slicing cannot apply (an output without the batch axis, or a slice
    smaller than one image).

    A slice runs the same arithmetic per image, but a conv or linear kernel
    may round differently at another batch size (a one-image batch takes
    another code path; the QANN's outputs move in the last bit too), so
    sliced outputs agree with unsliced ones to float rounding.
    """
    if per_slice < 1 or not sizes['sliceable']:
        return None
    parts = slice_sizes(x.shape[0], per_slice)
    outs = [_run(model, path, part, T, mode, steps)
            for part in x.split(parts)]
    merged = cat_batches(outs, parts)
    if merged is None:
        remember_unsliceable(model, x, T)
    return merged


def _run(model, path, x, T, mode, chunk):
    """One batch through all T steps, at most ``chunk`` steps per call of
    the path; outputs summed step by step in time order, then averaged."""
    average = TimeAverage(T)
    with timestep_run(model, T, x.shape[0], mode) as run:
        start = 0
        while start < T:
            steps = min(chunk, T - start)
            run.begin_pass(steps)
            average.add(path(x), run.split_steps)
            start += steps
    return average.mean()
