"""What a run keeps while its neurons see one batch, declared in one place.

Per neuron call site (an mm block may call one activation module at
several places, each its own neuron layer), a run keeps the state the
neuron's rule asks for (:meth:`rules.NeuronRule.new_state`: the membrane V
and, for a rule with a count such as the signed one, the net spike count),
made at the site's first call (V = theta / 2, count 0). Nothing else lives
between calls: a neuron holds only its threshold.

Reset: every batch gets a fresh :class:`TimestepRun` (:func:`timestep_run`),
attached to the neurons for the ``with`` block and dropped, state and all,
when it ends; no caller has to remember to clear anything.

Time folding is told, not guessed: the run knows how many steps the
current call of the path presents and the batch size, and
:meth:`TimestepRun.view` / :meth:`TimestepRun.split_steps` are the one
place that reads a tensor's leading axis as steps x batch.
"""
from contextlib import contextmanager

from .functional import new_state, time_mean, unfold_time
from .neurons import IFNeuron


def neurons_of(model):
    """The IF neurons of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, IFNeuron)]


class TimestepRun:
    """One batch's run as its neurons see it.

    The runner says how many steps each call of the path presents
    (:meth:`begin_pass`); a neuron asks :meth:`view` for its input as steps,
    and :meth:`state` for the membrane and count of its current call site
    when the state carries over between calls.
    """

    def __init__(self, timesteps: int, batch_size: int, mode: str):
        # T and mode come checked (an SNNSettings, or run_timesteps)
        self.timesteps = int(timesteps)
        self.batch_size = int(batch_size)
        self.mode = mode
        #: steps presented by the current call of the path
        self.steps = self.timesteps if mode == 'folded' else 1
        self._states = {}  # neuron -> [(v, count) per call site]
        self._calls = {}  # neuron -> call sites seen in this pass

    @property
    def fresh(self) -> bool:
        """True when one call presents all T steps: nothing carries over."""
        return self.steps == self.timesteps

    def begin_pass(self, steps: int):
        """A new call of the path starts, presenting ``steps`` steps."""
        self.steps = int(steps)
        self._calls.clear()

    # -- reading tensors of the current call ---------------------------------
    def steps_of(self, t):
        """``t`` as [steps, batch, ...] when it holds one value per step
        of this call (time folded into its batch axis, more than one step);
        None otherwise."""
        S, B = self.steps, self.batch_size
        if S > 1 and t.shape[0] == S * B:
            return unfold_time(t, S, B)
        return None

    def view(self, x):
        """A neuron's input as (steps, constant): [steps, batch, ...] and
        False, or, when the layers before ran once for all steps (first-layer
        charge reuse), the one step's input [batch, ...] and True."""
        steps = self.steps_of(x)
        if steps is not None:
            return steps, False
        if x.shape[0] == self.batch_size:
            return x, True
        raise RuntimeError(
            f'a neuron got a batch of {x.shape[0]}, neither the run\'s '
            f'B={self.batch_size} nor {self.steps} steps x B: a layer on the '
            'spiking path changed the batch axis')

    def split_steps(self, t):
        """An output's contribution to the sum over time, as terms in time
        order; None when it is the same at every step (it passed no neuron).
        A 0-dim output was pooled over this call's steps already."""
        if t.dim() == 0:
            return (t * self.steps, )
        steps = self.steps_of(t)
        if steps is not None:
            return steps.unbind(0)
        if self.steps == 1:
            return (t, )
        return None

    def mean_over_time(self, t):
        """``t`` averaged over the T steps of a folded call (as the runner
        averages outputs); a tensor constant over time as it is."""
        terms = self.split_steps(t)
        return t if terms is None else time_mean(terms, self.timesteps)

    # -- state carried between calls ------------------------------------------
    def state(self, neuron, like, theta):
        """The (membrane, count) of ``neuron``'s next call site, made on
        ``like``'s device and dtype at its first call."""
        sites = self._states.setdefault(neuron, [])
        k = self._calls.get(neuron, 0)
        self._calls[neuron] = k + 1
        if k == len(sites):
            sites.append(new_state(like, theta, neuron.rule,
                                   self.timesteps))
        return sites[k]

    def states_of(self, neuron):
        return self._states.get(neuron, [])


@contextmanager
def timestep_run(model, timesteps: int, batch_size: int, mode: str):
    """Attach a fresh :class:`TimestepRun` to every neuron of ``model`` for
    one batch; detach it (and its state) after. Yields the run."""
    run = TimestepRun(timesteps, batch_size, mode)
    neurons = neurons_of(model)
    for n in neurons:
        n.timestep_run = run
    try:
        yield run
    finally:
        for n in neurons:
            n.timestep_run = None


@contextmanager
def timestep_context(model, timesteps: int, batch_size: int, mode: str):
    """Run ``model``'s neurons for one batch (every call of the path
    presents all T steps in folded mode, one in streaming) and clear their
    state after; yields the neurons."""
    with timestep_run(model, timesteps, batch_size, mode):
        yield neurons_of(model)
