"""Neuron rules: how a spiking neuron updates its state, one class each,
registered in one place (:data:`NEURON_RULES`).

A rule is the whole definition of a neuron's dynamics:

* ``name``: how configs, the command line and :func:`convert_to_snn` call
  it (``neuron='signed'``);
* :meth:`NeuronRule.new_state`: the state a run keeps per neuron call site
  (membrane V and, when ``needs_count``, a net spike count), and
  :meth:`NeuronRule.state_bytes`, what that state costs per value (the
  pass plans size streaming runs with it);
* :meth:`NeuronRule.step`: the torch reference update, the definition
  every fused kernel is tested against bit for bit;
* ``fused_signed``: which fused update serves it. The C kernel
  (``_if_kernel.c``) and the Triton kernel (``triton_if.py``) implement
  the IF update with and without negative spikes, chosen by their
  ``signed`` flag; a rule they implement names the flag it needs, a rule
  they do not leaves it None and runs the reference loop on every device.
  ``c_kernel`` / ``triton_kernel`` say whether each of the two serves it.

A new rule is one new class::

    @register_rule
    class ResetToZeroIF(NeuronRule):
        name = 'reset_zero'

        def step(self, v, count, x, theta):
            v.add_(x)
            pos = v >= theta
            v.masked_fill_(pos, 0)
            return pos.to(v.dtype)

after which ``convert_to_snn(qann, neuron='reset_zero')`` builds neurons
that follow it (:data:`~fastsnn_mm.spiking.neurons.NEURONS` makes a neuron
class per registered rule) in every run mode.
"""
import torch

__all__ = ['NeuronRule', 'UnsignedIF', 'SignedIF', 'NEURON_RULES',
           'register_rule', 'as_rule', 'NEG_EPS', 'neg_threshold',
           'count_dtype']

#: A membrane this far below zero counts as negative (absorbs float noise).
NEG_EPS = 1e-6


def count_dtype(timesteps: int):
    """A neuron fires at most once a step, so |count| <= T: int8 holds it for
    T <= 127 at a quarter of float's memory, which matters in streaming
    mode, where every neuron keeps its state for the whole run."""
    return torch.int8 if timesteps <= 127 else torch.int32


def neg_threshold(theta):
    """The signed rule's negative threshold, computed here only: the
    reference compares with this tensor and :func:`functional.if_folded` /
    :func:`functional.if_stateful` hand the same tensor to the kernels."""
    return -NEG_EPS * theta


class NeuronRule:
    """Base of the neuron rules; subclass it, set ``name`` and write
    :meth:`step`, then register the class (:func:`register_rule`).

    The registry holds one instance per rule; a rule keeps no per-neuron
    data (the run keeps the state, the neuron its threshold).
    """

    #: the name configs and the command line use (``neuron=...``)
    name: str = None
    #: True when the rule keeps a net spike count beside the membrane
    needs_count: bool = False
    #: the ``signed`` flag of the fused IF kernels (C, Triton) that
    #: implement this rule; None: no fused kernel does (reference loop)
    fused_signed = None

    @property
    def c_kernel(self) -> bool:
        """True when the C kernel serves this rule (float32 CPU tensors);
        a rule may override it with a class attribute."""
        return self.fused_signed is not None

    @property
    def triton_kernel(self) -> bool:
        """True when the Triton kernel serves this rule (CUDA tensors);
        a rule may override it with a class attribute."""
        return self.fused_signed is not None

    def new_state(self, like, theta, timesteps: int):
        """(membrane, count) for a fresh run, on ``like``'s device and in
        its dtype: V = theta / 2, and a zero count (``count_dtype(T)``)
        when the rule ``needs_count``, else None."""
        # laid out as ``like`` (channels-last stays so): the C kernel
        # walks the state and each step's input as one flat array
        v = torch.full_like(like, 0.5).mul_(theta)
        count = torch.zeros_like(like, dtype=count_dtype(timesteps)) \
            if self.needs_count else None
        return v, count

    def state_bytes(self, value_bytes: int, timesteps: int) -> int:
        """Bytes of state per neuron value (``value_bytes``: the size of
        one membrane value) kept by :meth:`new_state`."""
        count = count_dtype(timesteps).itemsize if self.needs_count else 0
        return value_bytes + count

    def step(self, v, count, x, theta):
        """One in-place update of ``v`` (and ``count``) with the input
        ``x``; returns the spikes (+1 / 0 / -1) in ``v``'s dtype."""
        raise NotImplementedError(
            f'neuron rule {self.name!r} does not define step()')

    def __repr__(self):
        return f'<neuron rule {self.name!r}>'

    def __reduce__(self):
        # a pickled rule (a neuron pickled whole) is the registered one
        return as_rule, (self.name, )


#: name -> the registered rule (one instance per rule class)
NEURON_RULES = {}


def register_rule(cls=None, *, force: bool = False):
    """Register a :class:`NeuronRule` subclass under its ``name`` (as a
    class decorator, or called on the class); returns the class.

    ``force`` replaces a rule already registered under that name.
    """
    def register(rule_cls):
        if not (isinstance(rule_cls, type)
                and issubclass(rule_cls, NeuronRule)):
            raise TypeError(f'register_rule takes a NeuronRule subclass, '
                            f'got {rule_cls!r}')
        name = rule_cls.name
        if not isinstance(name, str) or not name:
            raise TypeError(f'{rule_cls.__name__}.name must be a non-empty '
                            f'string, got {name!r}')
        if name in NEURON_RULES and not force:
            raise KeyError(f'a neuron rule named {name!r} is registered '
                           f'already ({type(NEURON_RULES[name]).__name__}); '
                           'pass force=True to replace it')
        rule = rule_cls()
        if rule.fused_signed not in (None, True, False):
            raise TypeError(f'{rule_cls.__name__}.fused_signed must be '
                            f'None, True or False, got {rule.fused_signed!r}')
        if rule.fused_signed and not rule.needs_count:
            raise TypeError(f'{rule_cls.__name__}: the signed fused kernel '
                            'keeps a net spike count; set needs_count = True')
        NEURON_RULES[name] = rule
        return rule_cls
    return register if cls is None else register(cls)


def as_rule(rule) -> NeuronRule:
    """The registered rule ``rule`` stands for: a rule, its class, its
    name, or (as the functional API took before rules were classes) a
    bool, True for the signed rule and False for the unsigned one."""
    if isinstance(rule, NeuronRule):
        return rule
    if isinstance(rule, bool):
        rule = 'signed' if rule else 'unsigned'
    elif isinstance(rule, type) and issubclass(rule, NeuronRule):
        found = NEURON_RULES.get(rule.name)
        if type(found) is not rule:
            raise KeyError(f'neuron rule class {rule.__name__} is not '
                           'registered (decorate it with @register_rule)')
        return found
    if isinstance(rule, str):
        try:
            return NEURON_RULES[rule]
        except KeyError:
            raise KeyError(f'no neuron rule named {rule!r}; registered: '
                           f'{", ".join(map(repr, sorted(NEURON_RULES)))}'
                           ) from None
    raise TypeError(f'not a neuron rule: {rule!r}')


# -- the rules ----------------------------------------------------------------

@register_rule
class UnsignedIF(NeuronRule):
    """Integrate and fire, reset by subtraction: V += x; fire +1 and
    subtract theta when V >= theta (the comparison baseline)."""

    name = 'unsigned'
    fused_signed = False

    def step(self, v, count, x, theta):
        v.add_(x)
        pos = v >= theta
        v.sub_(pos * theta)
        return pos.to(v.dtype)


@register_rule
class SignedIF(NeuronRule):
    """The unsigned rule, plus a negative spike: fire -1 (and add theta
    back) when V drops below zero while the net spike count is positive.
    This undoes spikes that early inputs caused but later negative inputs
    cancelled (the *sequential error*), so the count equals the QANN
    level (Fast-SNN)."""

    name = 'signed'
    needs_count = True
    fused_signed = True

    def step(self, v, count, x, theta):
        v.add_(x)
        pos = v >= theta
        v.sub_(pos * theta)
        neg = (v < neg_threshold(theta)) & (count > 0)
        v.add_(neg * theta)
        count.add_(pos).add_(neg, alpha=-1)
        return pos.to(v.dtype) - neg.to(v.dtype)
