"""Is a converted SNN right? Its spikes checked against its own QANN.

At T = 2^b - 1 the Fast-SNN conversion has a known relation to its QANN:
a neuron whose summed input over the T steps equals the QANN's
pre-activation fires a net count equal to the QANN level, unless its input
asks for more than one spike in some step (it fires at most once a step:
the *timing* error the paper bounds) or sits on a rounding tie. So each
neuron call site can be told apart, element by element:

* **exact**: net count == QANN level;
* **timing**: the summed input asks for the QANN level, the neuron fell
  short by its one-spike-a-step limit (its own, expected error);
* **inherited**: the summed input already asks for another count, because
  an earlier layer was off (the error it inherits);
* **tie**: the summed input sits within float noise of a rounding tie.

and a layer is **wrong** when its error cannot come from timing:

* its threshold is not the QANN's clip;
* it did not follow its own rule on the input it got (a reference IF loop
  on the recorded input fires another count: state leaking between calls,
  a broken kernel);
* every neuron layer before it is exact, yet its time-averaged input
  differs from the QANN's pre-activation (something between the layers is
  not the QANN's linear map: a functional non-linearity acting on spike
  trains step by step, a wrong readout, state shared by two calls).

Outputs (the last linear layers, averaged over T) are compared too: when no
neuron layer has any miss they must equal the QANN's to float rounding.
The SNN runs folded with all T steps in one call, so every neuron call's
input and spikes are seen whole.
"""
import copy
import math

import torch
from torch import nn

from ..errors import FastSNNError
from ..quantization import QuantReLU
from ..quantization.calibration import calibrate_alpha
from ..spiking import IFNeuron, convert_to_snn
from ..spiking.functional import flatten_outputs, if_loop, qann_level
from ..spiking.run_state import timestep_run
from ..utils.modules import eval_mode
from .layer_stats import _CallSites, _hooks, default_timesteps, path_of


class NonFiniteQANNError(FastSNNError, ValueError):
    """The reference itself holds NaN or Inf (a random deep net that
    overflowed, clips calibrated on such values)."""


#: verdicts of a layer, best first
VERDICTS = ('exact', 'tie', 'timing', 'inherited', 'wrong')


def _float_tol(dtype) -> float:
    """Relative tolerance for two sums of the same terms in another order:
    float32 sums of a few thousand terms agree to ~1e-5 of their scale."""
    return 1e-9 if dtype == torch.float64 else 2e-4


def _qann_pass(qann, x):
    """{site: (pre-activation, output, alpha)} of one QANN batch, and the
    outputs of its path."""
    root, path = path_of(qann)
    site, acts = _CallSites(), {}

    def keep(name, mod, inp, out):
        acts[site(name)] = (inp[0].detach().clone(), out.detach().clone(),
                            float(mod.alpha.detach().abs().item()))

    with torch.no_grad(), _hooks(root, QuantReLU, keep):
        outs = path(x)
    bad = [n for n, (_, q, alpha) in acts.items()
           if not math.isfinite(alpha) or not torch.isfinite(q).all()]
    if bad:
        raise NonFiniteQANNError(
            f'the QANN itself is not finite at {len(bad)} activation(s) '
            f'({", ".join(bad[:3])}): its clips or activations hold NaN or '
            'Inf, so there is nothing to compare the SNN with; load a '
            'trained checkpoint or calibrate the clips on real inputs')
    return acts, outs


def _snn_pass(snn, x, T):
    """{site: (per-step input or constant input, constant, spikes [T, B,
    ...], theta, neuron rule)} of one SNN batch in execution order, and the
    outputs averaged over T."""
    root, path = path_of(snn)
    B = x.shape[0]
    site, seen = _CallSites(), {}

    def keep(name, mod, inp, out):
        steps, constant = run.view(inp[0].detach())
        theta = mod.theta.to(out.dtype)
        spikes = torch.round(out.detach() / theta).reshape(T, B,
                                                           *out.shape[1:])
        seen[site(name)] = (steps.clone(), constant, spikes,
                            float(mod.theta.abs().item()), mod.rule)

    # hooks switch off in-place spikes, so the recorded input stays intact
    with torch.no_grad(), timestep_run(snn, T, B, 'folded') as run, \
            _hooks(root, IFNeuron, keep):
        run.begin_pass(T)
        out = path(x)
        leaves, rebuild = flatten_outputs(out)
        means = [run.mean_over_time(t) for t in leaves]
    return seen, rebuild(iter(means))


class _Layer:
    """Element counts of one neuron call site over the batches."""

    def __init__(self, name, theta, alpha):
        self.name, self.theta, self.alpha = name, theta, alpha
        self.n = self.exact = self.tie = self.timing = self.inherited = 0
        self.rule_errors = 0
        self.input_error = 0.0  # max |SNN mean input - QANN input| / theta
        self.upstream_exact = True
        self.reasons = []

    def verdict(self):
        if self.reasons:
            return 'wrong'
        for name in ('inherited', 'timing', 'tie'):
            if getattr(self, name):
                return name
        return 'exact'

    def row(self):
        n = max(self.n, 1)
        return dict(layer=self.name, verdict=self.verdict(),
                    theta=self.theta, qann_alpha=self.alpha, elements=self.n,
                    exact=self.exact / n, tie=self.tie / n,
                    timing=self.timing / n, inherited=self.inherited / n,
                    input_error=self.input_error,
                    reasons=list(self.reasons))


def _check_site(layer, q_in, q_out, s_in, constant, spikes, rule, T,
                upstream_exact, tol):
    theta = layer.theta
    if not math.isclose(theta, max(layer.alpha, 1e-8), rel_tol=1e-6):
        layer.reasons.append(f'threshold {theta:.6g} is not the QANN clip '
                             f'{layer.alpha:.6g}')
    count = spikes.sum(0)
    level = qann_level(q_out.to(spikes.dtype), theta, T)
    # the neuron's own rule, replayed on the input it got
    th = torch.tensor([theta], dtype=s_in.dtype, device=s_in.device)
    replay = if_loop(s_in, th, rule, constant, T).sum(0)
    rule_bad = int((replay != count).sum())
    if rule_bad:
        layer.rule_errors += rule_bad
        layer.reasons.append(
            f'{rule_bad} neuron(s) fired another count than the IF rule on '
            'their own input (state carried between calls or a broken '
            'kernel)')
    summed = (T * s_in if constant else s_in.sum(0)).to(torch.float64)
    units = summed / theta
    asked = torch.clamp(torch.floor(units + 0.5), 0, T)
    frac = units - torch.floor(units)
    tie = (frac - 0.5).abs() <= tol * (units.abs() + 1)
    missed = count != level
    layer.n += count.numel()
    layer.exact += int((~missed).sum())
    layer.tie += int((missed & tie).sum())
    layer.timing += int((missed & ~tie & (asked == level)).sum())
    layer.inherited += int((missed & ~tie & (asked != level)).sum())
    mean_in = summed / T
    err = (mean_in - q_in.to(torch.float64)).abs().max().item() / theta
    scale = q_in.abs().max().item() / theta + 1
    layer.input_error = max(layer.input_error, err)
    if upstream_exact and err > tol * scale:
        layer.reasons.append(
            f'every neuron layer before it is exact, yet its mean input '
            f'differs from the QANN pre-activation by {err:.3g} theta (a '
            'non-linear call between the layers, or state shared by calls)')
    return not missed.any()


def check_conversion(qann, snn, batches, timesteps=None):
    """Check ``snn`` (a conversion of ``qann``) against it on ``batches``.

    Args:
        qann: the quantized model (QuantReLUs), a task wrapper or module.
        snn: its conversion: the same module paths, neurons for QuantReLUs.
        batches: input tensors of the spiking path (preprocessed images).
        timesteps: T; default the SNN's own.

    Returns:
        dict: ``timesteps``; ``layers``, one row per neuron call site in
        execution order (verdict, element shares per class, the largest
        input error in thresholds, reasons when wrong); ``outputs``, one
        row per output tensor (relative error ||SNN - QANN|| / ||QANN -
        mean||, max absolute error, and whether it must be exact); ``ok``
        (no layer wrong, no output off while every layer is exact).
    """
    T = timesteps or default_timesteps(snn)
    layers, outputs, order = {}, [], []
    with eval_mode(qann, snn):
        for x in batches:
            acts, q_outs = _qann_pass(qann, x)
            seen, s_outs = _snn_pass(snn, x, T)
            if set(seen) != set(acts):
                missing = sorted(set(acts) ^ set(seen))
                raise ValueError(
                    'the SNN and the QANN call different activation sites '
                    f'({", ".join(missing[:4])}): compare a model with its '
                    'own conversion')
            all_exact = True
            for name, (s_in, constant, spikes, theta, rule) in seen.items():
                q_in, q_out, alpha = acts[name]
                layer = layers.get(name)
                if layer is None:
                    layer = layers[name] = _Layer(name, theta, alpha)
                    order.append(name)
                tol = _float_tol(s_in.dtype)
                exact = _check_site(layer, q_in, q_out, s_in, constant,
                                    spikes, rule, T, all_exact, tol)
                all_exact = all_exact and exact
            outputs.append(_compare_outputs(q_outs, s_outs, all_exact))
    rows = [layers[n].row() for n in order]
    outs = _merge_outputs(outputs)
    ok = all(r['verdict'] != 'wrong' for r in rows) and \
        all(o['ok'] for o in outs)
    return dict(timesteps=T, layers=rows, outputs=outs, ok=ok)


def _compare_outputs(q_outs, s_outs, must_be_exact):
    qs, _ = flatten_outputs(q_outs)
    ss, _ = flatten_outputs(s_outs)
    rows = []
    for i, (q, s) in enumerate(zip(qs, ss)):
        q64, s64 = q.to(torch.float64), s.to(torch.float64)
        spread = (q64 - q64.mean()).norm().item()
        diff = (s64 - q64).norm().item()
        rel = diff / spread if spread > 0 else (0.0 if diff == 0 else
                                                math.inf)
        tol = _float_tol(q.dtype) * (q64.abs().max().item() + 1)
        max_abs = (s64 - q64).abs().max().item()
        ok = not must_be_exact or max_abs <= tol
        rows.append(dict(output=i, shape=list(q.shape), rel_error=rel,
                         max_abs_error=max_abs, must_be_exact=must_be_exact,
                         ok=ok))
    return rows


def _merge_outputs(per_batch):
    """One row per output over the batches: the worst of each."""
    merged = []
    for rows in zip(*per_batch):
        worst = max(rows, key=lambda r: r['rel_error'])
        merged.append(dict(worst, ok=all(r['ok'] for r in rows),
                           must_be_exact=any(r['must_be_exact']
                                             for r in rows)))
    return merged


def format_check(result) -> str:
    """One line a layer, one an output, and a summary."""
    lines = [f'{"layer":<44} {"verdict":<9} {"exact":>7} {"timing":>7} '
             f'{"inherit":>7} {"tie":>6} {"in.err/θ":>9}']
    for r in result['layers']:
        lines.append(
            f'{r["layer"]:<44} {r["verdict"]:<9} {100 * r["exact"]:6.2f}% '
            f'{100 * r["timing"]:6.2f}% {100 * r["inherited"]:6.2f}% '
            f'{100 * r["tie"]:5.2f}% {r["input_error"]:9.2e}')
        for why in r['reasons']:
            lines.append(f'    wrong: {why}')
    for o in result['outputs']:
        lines.append(f'output {o["output"]} {tuple(o["shape"])}: relative '
                     f'error {o["rel_error"]:.4f}, max abs '
                     f'{o["max_abs_error"]:.3g}'
                     + ('' if o['ok'] else ' (WRONG: every layer is exact, '
                        'so the output must be)'))
    counts = {v: 0 for v in VERDICTS}
    for r in result['layers']:
        counts[r['verdict']] += 1
    summary = ', '.join(f'{n} {v}' for v, n in counts.items() if n)
    lines.append(f'T={result["timesteps"]}: {len(result["layers"])} neuron '
                 f'layers: {summary}; '
                 + ('conversion OK' if result['ok'] else 'conversion WRONG'))
    return '\n'.join(lines)


class _Path(nn.Module):
    """A task wrapper's spiking path as a module (calibration runs it)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return path_of(self.model)[1](x)


@torch.no_grad()
def settle_untrained(model, batches, passes: int = 3):
    """Give a model with random weights the statistics a trained one has,
    so its layers carry signal: BN running statistics averaged over
    ``passes`` training-mode passes of each batch (a cumulative average,
    not the momentum's slow drift from 0 / 1), then every clip calibrated
    (99.9th percentile of its positive inputs). Without this, stock
    initialisations with the default clip leave deep layers silent, and a
    silent layer is trivially exact. In place; returns ``model``."""
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    root, path = path_of(model)
    root.train()
    for _ in range(passes):
        for x in batches:
            path(x)
    root.eval()
    calibrate_alpha(_Path(model), batches)
    return model


def convert_and_check(qann, batches, timesteps=None, neuron='signed'):
    """Convert a copy of ``qann`` (T default 2^b - 1) and check it against
    ``qann`` on ``batches``: :func:`check_conversion`'s result."""
    snn = copy.deepcopy(qann)
    if hasattr(snn, 'to_snn'):
        snn.to_snn(timesteps=timesteps, neuron=neuron)
    else:
        snn = convert_to_snn(snn, timesteps, neuron)
    return check_conversion(qann, snn, batches, timesteps)


__all__ = ['check_conversion', 'convert_and_check', 'format_check',
           'settle_untrained', 'VERDICTS']
