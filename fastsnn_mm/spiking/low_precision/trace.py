"""Which layers read spikes: learnt from the model's first call.

A layer reads spikes when its input *is* a neuron's output tensor (the
same object: nothing ran in between). Found by a traced call rather than
from the module tree, because the tree does not say what feeds what: mm
blocks call their layers from Python code (a ResNet block's shortcut, a
pooled readout, one activation module called at two places), and a
structural guess that took a pooled or summed tensor for spikes would be
silently wrong. The trace is the model's own first call on real data, so
it needs no sample input and sees exactly the calls that later run.

While the trace is on, every neuron has a forward hook that notes its
output (weakly: a freed tensor's id may come back), and each layer asks,
call by call, whether its input is one of those; the model's forward hook
ends the trace after the first call in which a layer ran, and logs one
line of what runs in which precision. A model's dataflow is the same for
every batch, so the first call's answer holds for the later ones. At the
end each neuron learns the form its low-precision readers take spikes in
and writes them so itself (:mod:`..spike_codes`): no conversion pass.
"""
import weakref

from mmengine.logging import print_log
from torch import nn

from ..inplace_bn import InPlaceBatchNorm2d
from ..run_state import neurons_of
from .layers import FLOAT32


class SpikeTrace:
    """The trace of one converted model (see module doc)."""

    def __init__(self, model, spike_dtype):
        self.spike_dtype = spike_dtype
        self.active = True
        self._layers = {}  # layer -> its module path
        self._outputs = {}  # id(tensor) -> (weak ref, neuron)
        self._autograd_noted = False
        #: BatchNorm layers left unfolded (``convert_to_snn(fold_bn=True)``
        #: folds them into their convs: the low-precision convs are fast,
        #: so BN is a large share of what is left)
        self._unfolded_bn = sum(type(m) in (nn.BatchNorm2d,
                                            InPlaceBatchNorm2d)
                                for m in model.modules())
        self._handles = [n.register_forward_hook(self._note_output)
                         for n in neurons_of(model)]
        self._handles.append(model.register_forward_hook(
            self._after_call, always_call=True))

    def watch(self, layer, name):
        self._layers[layer] = name

    def name_of(self, layer):
        """The module path of a watched layer."""
        return self._layers.get(layer, '?')

    def producer(self, x):
        """The neuron whose output ``x`` is, or None."""
        entry = self._outputs.get(id(x))
        return entry[1] if entry is not None and entry[0]() is x else None

    def _note_output(self, neuron, args, output):
        self._outputs[id(output)] = (weakref.ref(output), neuron)

    def _after_call(self, model, args, output):
        self._outputs.clear()
        if self.active and any(layer._source is not None
                               for layer in self._layers):
            self.retire()
            self._ask_neurons_for_codes()
            print_log(self.summary(), logger='current')

    def _ask_neurons_for_codes(self):
        """Each neuron whose low-precision readers all take one form of
        spikes writes them in that form beside its output (in the same
        pass: :mod:`..spike_codes`); readers in float32 read the output."""
        forms = {}
        for layer in self._layers:
            if isinstance(layer._source, nn.Module) and layer.codes_form:
                forms.setdefault(layer._source, set()).add(layer.codes_form)
        for neuron, wanted in forms.items():
            neuron.spike_codes = wanted.pop() if len(wanted) == 1 else None

    def retire(self):
        """End the trace: hooks off (re-conversion retires it too)."""
        self.active = False
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def note_autograd(self):
        if not self._autograd_noted:
            self._autograd_noted = True
            print_log(f'FastSNN: spike_dtype={self.spike_dtype!r}: autograd '
                      'is on, so the spike-reading layers run in float32; '
                      'run inference under torch.no_grad()', logger='current')

    def summary(self) -> str:
        """One line: which layers read spikes and what they run in."""
        reading = {name: layer for layer, name in self._layers.items()
                   if layer.runs_in is not None
                   or isinstance(layer._source, nn.Module)}
        kinds = {}
        for name, layer in reading.items():
            kind = layer.runs_in or 'float32 for now (autograd was on)'
            kinds.setdefault(kind, []).append(name)
        parts = ', '.join(f'{len(names)} in {kind}'
                          for kind, names in kinds.items()) or '-'
        line = (f'FastSNN: spike_dtype={self.spike_dtype!r}: '
                f'{len(reading)} layers read spikes: {parts}; '
                f'{len(self._layers) - len(reading)} other convs/linears '
                '(before the first neuron, readout, pooled inputs) stay '
                'float32')
        why = sorted({f'{name} ({layer.why_float32})'
                      for name, layer in reading.items()
                      if layer.runs_in == FLOAT32})
        if why:
            line += '; float32 for ' + ', '.join(why[:5]) + \
                (' ...' if len(why) > 5 else '')
        if self._unfolded_bn and reading:
            line += (f'; {self._unfolded_bn} BatchNorm layers run on their '
                     'own: fold_bn=True folds those it can pair with a '
                     'conv, a pass saved for each the neuron after it does '
                     'not apply in its own (benchmarks/bench_spike_dtype.py '
                     '--fold-bn)')
        return line

    def __getstate__(self):
        # a copy starts with no noted outputs (weak refs do not copy)
        state = dict(vars(self))
        state['_outputs'] = {}
        return state
