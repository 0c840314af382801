"""What the pass plans need to know about inputs of one shape, learnt once
per model and shape from a one-image, one-step pass.

The figures are kept in a table keyed weakly by the model: nothing is
stored on the model (a deep copy or a checkpoint does not carry stale
figures along), and the entry goes when the model does. Entries are
read-only; the one fact learnt later, that a path's outputs cannot be cut
by batch, is written back explicitly (:func:`remember_unsliceable`).
"""
import weakref
from types import MappingProxyType

from ..utils.modules import forward_hooks
from .run_state import neurons_of, timestep_run

#: model -> {input key: read-only figures}
_KNOWN = weakref.WeakKeyDictionary()


def _key(model, x, T):
    # T and the neuron rules set the state's bytes (a model may be
    # converted again with others); dtype and device set the rest
    return (tuple(x.shape[1:]), T, x.dtype, str(x.device),
            tuple(sorted({n.rule.name for n in neurons_of(model)})))


def input_shape_info(model, path, x, T):
    """The figures of inputs shaped as ``x`` (read-only mapping):
    ``step_bytes``, the bytes of the largest neuron input for one image and
    one step; ``state_bytes``, the bytes of state all neurons keep for one
    image in streaming mode; ``sliceable``, whether outputs can be cut by
    batch (True until a run finds otherwise)."""
    known = _KNOWN.setdefault(model, {})
    key = _key(model, x, T)
    if key not in known:
        inputs, state = [], []
        with timestep_run(model, T, 1, 'folded') as run, \
                forward_hooks(neurons_of(model),
                              lambda n: _measure(inputs, state, T)):
            run.begin_pass(1)
            path(x[:1])
        known[key] = MappingProxyType(dict(
            step_bytes=max(inputs, default=0), state_bytes=sum(state),
            sliceable=True))
    return known[key]


def remember_unsliceable(model, x, T):
    """Record that ``model``'s outputs for inputs shaped as ``x`` have no
    batch axis to cut, so later batches of that shape skip slicing."""
    known = _KNOWN.setdefault(model, {})
    key = _key(model, x, T)
    if key in known:
        known[key] = MappingProxyType(dict(known[key], sliceable=False))


def _measure(inputs, state, T):
    """Forward hook of the sizing pass: bytes of this call site's input
    (one image, one step) and of the state its rule keeps (membrane in the
    input's dtype, plus a count where the rule keeps one)."""
    def hook(neuron, args, output):
        x = args[0]
        inputs.append(x.numel() * x.element_size())
        state.append(x.numel()
                     * neuron.rule.state_bytes(x.element_size(), T))
    return hook
