"""Where spike sparsity could pay: event-driven convs against dense ones.

Why: in the converted SNN, every conv after the first reads spikes: its
input per step holds +theta, -theta or 0, and only 7-29 % of it is nonzero
(``bench_spike_dtype.py``, per conv table). A dense conv multiplies every
zero too; a sparse or event-driven conv touches only the weights that the
nonzero inputs reach, so it does a tenth of the arithmetic at 10 % density.
Whether that buys time depends on what finding the events and the
irregular memory access cost. This measures it, per layer, on the real
spikes, before anything of the kind goes into the library.

How: the network of ``bench_spike_dtype.py`` (QResNet-18, quantized
weights), converted with ``spike_dtype='int8'``: its first call marks the
convs that read spikes (``runs_in``); a second call records, with forward
pre-hooks, what each of them reads (all its calls of one SNN run). On those
inputs each alternative must give the dense conv's output (to 1e-4 of the
output's largest value) and is then timed against ``F.conv2d`` in float32,
side by side in paired rounds (``timing.paired``): ms per SNN run and the
median per-round ratio alternative / float32 (< 1: the alternative wins).

    python benchmarks/bench_sparse_spikes.py [--timesteps 7] [--batch 32]
        [--repeats 5] [--threads 1] [--alternatives tap-csr events ...]

The table goes to the terminal and to benchmarks/RESULTS.md (``--results``;
``--no-record``: terminal only).
"""
import argparse
import os
import statistics
import sys
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_spike_dtype import add_net_args, make_net  # noqa: E402
from core_import import import_core  # noqa: E402
from results import add_results_arg, environment, record  # noqa: E402
from timing import paired  # noqa: E402

# torch says its CSR support is beta at every first use; we know
warnings.filterwarnings('ignore', message='Sparse CSR tensor support')

# -- the conv's geometry ----------------------------------------------------


def geometry(conv):
    """(k, stride, padding) of a square, ungrouped, undilated conv."""
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    if (conv.kernel_size != (k, k) or conv.stride != (s, s)
            or conv.padding != (p, p) or conv.groups != 1
            or conv.dilation != (1, 1)):
        raise ValueError(f'{conv}: only square, ungrouped convs here')
    return k, s, p


def out_size(conv, x):
    k, s, p = geometry(conv)
    return [(n + 2 * p - k) // s + 1 for n in x.shape[2:]]


def to_nchw(rows, conv, x):
    """[N*Ho*Wo, O] rows (what a sparse x dense product gives) as the dense
    conv's contiguous [N, O, Ho, Wo], bias added: a drop-in output."""
    out = rows.reshape(x.shape[0], *out_size(conv, x), -1)
    out = out.permute(0, 3, 1, 2).contiguous()
    if conv.bias is not None:
        out += conv.bias.detach().view(1, -1, 1, 1)
    return out


def rows_by_column(conv):
    """The weight as the [C*k*k, O] matrix im2col rows multiply."""
    return conv.weight.detach().flatten(1).t().contiguous()


# -- the alternatives: factory(conv) -> run(x), or None where it does not
# -- apply; weights are prepared once, outside the timed calls -------------


def dense_float32(conv):
    """The baseline: what the float32 SNN runs."""
    w, b = conv.weight.detach(), conv.bias
    b = None if b is None else b.detach()
    return lambda x: F.conv2d(x, w, b, conv.stride, conv.padding)


def int8(conv):
    """The project's int8 path (``spike_dtype='int8'``): the converted
    layer itself, which remembers the neuron feeding it."""
    return conv if getattr(conv, 'runs_in', None) == 'int8' else None


def im2col_csr(conv):
    """``F.unfold``, the im2col matrix to CSR, one sparse x dense product
    (MKL) against the weights: the arithmetic of the nonzeros only."""
    k, s, p = geometry(conv)
    w = rows_by_column(conv)

    def run(x):
        cols = F.unfold(x, k, padding=p, stride=s)  # [N, C*k*k, L]
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
        return to_nchw(torch.sparse.mm(rows.to_sparse_csr(), w), conv, x)
    return run


def events(conv):
    """Event-driven: the +1 and the -1 inputs as two index sets; per sign
    and kernel offset, ``index_add_`` adds +-theta x the weight column of
    each event's channel to the output it reaches. Needs a ternary input."""
    k, s, p = geometry(conv)
    taps = [(a, b, conv.weight.detach()[:, :, a, b].t().contiguous())
            for a in range(k) for b in range(k)]

    def run(x):
        theta = float(x.abs().amax())
        ho, wo = out_size(conv, x)
        out = x.new_zeros(x.shape[0] * ho * wo, conv.out_channels)
        for sign, mask in ((1.0, x > 0), (-1.0, x < 0)):
            n, c, h, w = mask.nonzero(as_tuple=True)
            for a, b, tap in taps:
                y, z = h + p - a, w + p - b  # output position x stride
                ok = ((y % s == 0) & (z % s == 0) & (y >= 0) & (z >= 0)
                      & (y < ho * s) & (z < wo * s))
                at = ((n * ho + y // s) * wo + z // s)[ok]
                out.index_add_(0, at, tap[c[ok]], alpha=sign * theta)
        return to_nchw(out, conv, x)
    return run


def tap_csr(conv):
    """Per kernel tap, one sparse x dense product (MKL), no im2col: the
    zero-padded input, channels last, is one CSR [pixels, channels]
    matrix; the rows a tap reads for the whole padded output grid are a
    contiguous slice of it (a view), so ``out += slice @ weight[tap]``.
    Stride s: space-to-depth first, a stride-1 conv with ceil(k/s)^2 taps
    on s*s*C channels (1x1: every s-th pixel, then one product)."""
    k, s, p = geometry(conv)
    w = conv.weight.detach()
    if s > 1 and k > 1:
        grown = -(-k // s) * s  # kernel zero-padded to a multiple of s
        w = F.pixel_unshuffle(F.pad(w, (0, grown - k, 0, grown - k)), s)
    kt = w.shape[-1]
    taps = [(a, b, w[:, :, a, b].t().contiguous())
            for a in range(kt) for b in range(kt)]

    def run(x):
        ho, wo = out_size(conv, x)
        if s > 1 and k == 1:
            x, pad = x[:, :, ::s, ::s], 0
        elif s > 1:
            x, pad = space_to_depth(x, s, p, kt, (ho, wo)), 0
        else:
            pad = p
        out = taps_product(x, taps, kt, pad)
        out = out[:, :ho, :wo].permute(0, 3, 1, 2).contiguous()
        if conv.bias is not None:
            out += conv.bias.detach().view(1, -1, 1, 1)
        return out
    return run


def space_to_depth(x, s, p, kt, out):
    """``x`` zero-padded (p before; after, up to a multiple of s that the
    kt taps of the last output still reach) and cut into s x s phases:
    [N, s*s*C, H', W'], what the stride-1 conv of ``tap_csr`` reads."""
    size = [max(-(-(n + 2 * p) // s), m - 1 + kt) * s
            for n, m in zip(x.shape[2:], out)]
    x = F.pad(x, (p, size[1] - x.shape[3] - p, p, size[0] - x.shape[2] - p))
    return F.pixel_unshuffle(x, s)


def taps_product(x, taps, k, p):
    """The stride-1 conv of ``tap_csr`` over the padded grid: [N, H + 2p,
    W + 2p, O], valid at [:, :H + 2p - k + 1, :W + 2p - k + 1]."""
    n, c, h, w = x.shape
    hp, wp = h + 2 * p, w + 2 * p
    grid = n * hp * wp
    # the padded input, channels last, and (k-1) rows + k-1 pixels of zeros
    # after it, so that every tap's slice of `grid` rows exists
    pixels = x.new_zeros(grid + (k - 1) * (wp + 1), c)
    pixels[:grid].view(n, hp, wp, c)[:, p:p + h, p:p + w] = \
        x.permute(0, 2, 3, 1)
    csr = pixels.to_sparse_csr()
    # int32 once here, or MKL converts the indices at every product
    crow = csr.crow_indices().int()
    col, val = csr.col_indices().int(), csr.values()
    out = x.new_zeros(grid, taps[0][2].shape[1])
    for a, b, weight in taps:
        first = a * wp + b
        lo, hi = crow[first], crow[first + grid]
        rows = torch.sparse_csr_tensor(crow[first:first + grid + 1] - lo,
                                       col[lo:hi], val[lo:hi], (grid, c),
                                       check_invariants=False)
        out.addmm_(rows, weight)
    return out.view(n, hp, wp, -1)


def csr_mm_only(conv):
    """A ceiling, not a usable path: ``im2col_csr`` with its CSR matrix
    built before the clock starts (as if the neurons emitted it for free),
    so only the sparse product and the output copy are timed."""
    k, s, p = geometry(conv)
    w, built = rows_by_column(conv), {}

    def run(x):
        key = (x.data_ptr(), x._version)
        if key not in built:
            cols = F.unfold(x, k, padding=p, stride=s)
            built[key] = cols.transpose(1, 2).reshape(
                -1, cols.shape[1]).to_sparse_csr()
        return to_nchw(torch.sparse.mm(built[key], w), conv, x)
    return run


#: column name -> factory; 'best sparse' picks among SPARSE per layer
ALTERNATIVES = {'int8': int8, 'im2col-csr': im2col_csr, 'events': events,
                'tap-csr': tap_csr, 'csr-mm-only': csr_mm_only}
SPARSE = ('im2col-csr', 'events', 'tap-csr')

# -- the real inputs --------------------------------------------------------


def spike_inputs(args):
    """[(name, conv, inputs)] of each conv that reads spikes: the tensors
    it read in one SNN run (copies: a runner may reuse its buffers)."""
    from fastsnn_mm import convert_to_snn
    from fastsnn_mm.spiking.low_precision import SpikeInput
    from fastsnn_mm.utils.modules import forward_hooks
    snn = convert_to_snn(make_net(args), timesteps=args.timesteps,
                         spike_dtype='int8')
    x = torch.randn(args.batch, 3, args.size, args.size,
                    generator=torch.Generator().manual_seed(1))
    snn(x)  # the first call finds the spike-reading layers
    convs = {m: n.replace('module.', '') for n, m in snn.named_modules()
             if isinstance(m, SpikeInput) and isinstance(m, torch.nn.Conv2d)
             and m.runs_in}
    seen = {m: [] for m in convs}

    def keep(module):
        return lambda mod, inputs: seen[mod].append(inputs[0].clone())
    with forward_hooks(convs, keep, pre=True):
        snn(x)
    return [(name, m, seen[m]) for m, name in convs.items()]


# -- checking and timing ----------------------------------------------------


def check(name, ref, run, xs, tol=1e-4):
    """Refuse to time an alternative whose output is not the dense conv's."""
    for x in xs:
        want, got = ref(x), run(x)
        err = float((got - want).abs().max() / want.abs().max().clamp_min(
            1e-12))
        if got.shape != want.shape or not err <= tol:
            raise AssertionError(f'{name}: output differs from the dense '
                                 f'conv (relative error {err:.1e})')


def time_layer(args, conv, xs):
    """{alternative: (ms, ratio to dense)}, each paired with the dense conv
    on all of the layer's inputs; 'float32': the dense conv's median ms."""
    dense = dense_float32(conv)

    def base():
        return [dense(x) for x in xs]
    times, dense_ms = {}, []
    for name in args.alternatives:
        run = ALTERNATIVES[name](conv)
        if run is None:
            continue
        check(name, dense, run, xs)
        tb, to, ratio, _, _ = paired(base, lambda: [run(x) for x in xs],
                                     args.repeats, 'cpu')
        dense_ms.append(tb)
        times[name] = (to, ratio)
    if not dense_ms:  # no alternative applies here: time dense alone
        dense_ms.append(paired(base, base, args.repeats, 'cpu')[0])
    times['float32'] = (statistics.median(dense_ms), 1.0)
    sparse = [times[n] for n in SPARSE if n in times]
    if sparse:
        times['best sparse'] = min(sparse, key=lambda t: t[1])
    return times


def cell(times, name):
    """'ms (ratio to float32)', or '-' where the alternative does not
    apply."""
    if name not in times:
        return '-'
    ms, ratio = times[name]
    return f'{ms:.1f} ({ratio:.2f})'


def columns(args):
    alts = [n for n in args.alternatives if n != 'csr-mm-only']
    alts += ['best sparse'] if any(n in SPARSE for n in alts) else []
    alts += ['csr-mm-only'] if 'csr-mm-only' in args.alternatives else []
    return alts


def table(args, layers):
    """Rows per layer, then the whole-network estimate (sums over the
    layers an alternative applies to, against dense on the same layers)."""
    alts = columns(args)
    head = ['conv', 'weight (O x C x k x k), stride', 'input density',
            'float32 (ms)'] + [f'{a} ms (/ float32)' for a in alts]
    rows, per_layer = [], []
    print('| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
    for name, conv, xs in layers:
        times = time_layer(args, conv, xs)
        per_layer.append(times)
        density = sum(float((x != 0).sum()) for x in xs) / sum(
            x.numel() for x in xs)
        shape = ' x '.join(map(str, conv.weight.shape))
        rows.append([name, f'{shape}, {conv.stride[0]}', f'{density:.3f}',
                     f"{times['float32'][0]:.1f}"]
                    + [cell(times, a) for a in alts])
        print('| ' + ' | '.join(rows[-1]) + ' |', flush=True)
    total = {}
    for a in alts:
        hit = [t for t in per_layer if a in t]
        if hit:
            ms = sum(t[a][0] for t in hit)
            total[a] = (ms, ms / sum(t['float32'][0] for t in hit))
    dense = sum(t['float32'][0] for t in per_layer)
    rows.append(['all spike-reading convs', '-', '-', f'{dense:.1f}']
                + [cell(total, a) for a in alts])
    print('| ' + ' | '.join(rows[-1]) + ' |')
    return head, rows, total, per_layer


def verdict(total, per_layer):
    """Kept only if it wins: the network total decides."""
    best = total.get('best sparse')
    if best is None:
        return 'No sparse alternative was timed.'
    ratios = [t['best sparse'][1] for t in per_layer if 'best sparse' in t]
    wins = sum(r < 1 for r in ratios)
    text = (f'Verdict: the best sparse path is faster than dense float32 on '
            f'{wins} of {len(ratios)} convs (down to {min(ratios):.2f}x) '
            f'and takes {best[1]:.2f}x its time over the network: ')
    text += ('it wins.' if best[1] < 1 else 'it loses, so nothing goes '
             'into the library; this table is the measurement.')
    if 'int8' in total:
        text += f' The int8 path takes {total["int8"][1]:.2f}x.'
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--timesteps', type=int, default=7)
    add_net_args(p)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--alternatives', nargs='+', default=list(ALTERNATIVES),
                   choices=list(ALTERNATIVES))
    add_results_arg(p)
    args = p.parse_args(argv)
    kind = import_core()
    torch.set_num_threads(args.threads)
    env = dict(environment('cpu'), fastsnn_import=kind)
    with torch.no_grad():
        layers = spike_inputs(args)
        print(f'\nPer spike-reading conv at T={args.timesteps}, batch '
              f'{args.batch}: ms per SNN run (ratio to float32, paired '
              f'rounds):')
        head, rows, total, per_layer = table(args, layers)
    note = verdict(total, per_layer)
    print('\n' + note)
    if args.record:
        setting = (f'QResNet-18 width {args.width}, {args.bits}-bit, weights '
                   f'{args.weight_bits or "float"}-bit, {args.size} px: '
                   f'sparse spike convs at T={args.timesteps}, batch '
                   f'{args.batch}')
        record('spike_dtype', env, setting, head, rows,
               notes=NOTES + (note,), md_path=args.results)
    return total


NOTES = (
    'Sparse and event-driven alternatives to the dense float32 conv '
    '(`F.conv2d`) of each conv that reads spikes, on the spikes it read in '
    'one SNN run (`benchmarks/bench_sparse_spikes.py`); each cell: ms per '
    'SNN run (median of paired rounds) and, in brackets, the median '
    'per-round ratio to float32 (< 1: faster). Every alternative gives '
    'the dense output (to 1e-4 of its largest value). "im2col-csr": '
    '`F.unfold`, CSR, `torch.sparse.mm`; "events": +1 and -1 inputs as '
    'index sets, `index_add_` of weight columns per kernel offset; '
    '"tap-csr": the padded input as one CSR [pixels, channels] matrix, '
    'one `addmm_` per kernel tap on a row slice of it (stride 2: '
    'space-to-depth first; 1x1: a single product over channels); '
    '"best sparse": the fastest of these per layer. "csr-mm-only" is a '
    'ceiling, not a path: the sparse product alone, its CSR matrix built '
    'before the clock starts. The last row sums each column over the '
    'layers it applies to, its ratio against dense on those layers.',
)

if __name__ == '__main__':
    main()
