"""Save, or compare against a saved file, the exact outputs of the demo
models as QANNs and as SNNs: the check that a refactor changed no bit.

    python tools/analysis_tools/snn_output_digest.py --save before.pt
    # ... change the code ...
    python tools/analysis_tools/snn_output_digest.py --against before.pt

Each demo config's model is built with seeded weights (no checkpoint or
data needed), given spread-out BN statistics and clips so that every layer
spikes, and run on one seeded batch: the QANN's spiking path, then the SNN
for each neuron rule and mode (folded, chunked, streaming) at T = 2^b - 1
and at a T with int32 counts. Only public entry points are used
(``MODELS.build``, ``to_snn``, ``run_timesteps``), so the same script runs
on the commits before and after a change.
"""
import argparse
import copy
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import fastsnn_mm  # noqa: E402,F401
from fastsnn_mm.spiking import run_timesteps  # noqa: E402

#: config, input size, batch
CASES = (
    ('configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py', 32, 4),
    ('configs/fastsnn_cls/qresnet_synthetic_cls_2bit_layerwise.py', 32, 4),
    ('configs/yolo_fastsnn_synthetic.py', 96, 2),
    ('configs/deeplab_fastsnn_synthetic.py', 64, 2),
)
#: (neuron, mode, time_chunk)
RUNS = (('signed', 'folded', None), ('unsigned', 'folded', None),
        ('signed', 'folded', 2), ('signed', 'streaming', None),
        ('unsigned', 'streaming', None))


def build(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('snn', None)
    model_cfg.pop('data_preprocessor', None)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
            elif name.endswith('running_var'):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
        for name, p in model.named_parameters():
            if name.endswith('alpha'):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    return model.eval()


def flat(out, prefix, into):
    if isinstance(out, torch.Tensor):
        into[prefix] = out.detach().clone()
    elif isinstance(out, (list, tuple)):
        for i, o in enumerate(out):
            flat(o, f'{prefix}.{i}', into)
    elif isinstance(out, dict):
        for k, o in out.items():
            flat(o, f'{prefix}.{k}', into)


def digest():
    results = {}
    for path, size, batch in CASES:
        model = build(path)
        bits = min(m.bits for m in model.modules() if hasattr(m, 'bits')
                   and hasattr(m, 'alpha'))
        x = torch.randn(batch, 3, size, size,
                        generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            flat(model.spiking_path(x), f'{path}|qann', results)
        for T in (2**bits - 1, 130):
            for neuron, mode, chunk in RUNS:
                if T > 100 and mode == 'streaming':
                    continue
                snn = copy.deepcopy(model)
                snn.to_snn(timesteps=T, neuron=neuron)
                with torch.no_grad():
                    out = run_timesteps(snn, snn.spiking_path, x, T, mode,
                                        chunk)
                flat(out, f'{path}|T{T}|{neuron}|{mode}|{chunk}', results)
        print(f'{path}: {sum(k.startswith(path) for k in results)} outputs',
              flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--save', help='write the outputs to this file')
    group.add_argument('--against', help='compare with a saved file')
    args = parser.parse_args()
    torch.set_num_threads(1)  # one kernel path, whatever the machine
    results = digest()
    if args.save:
        torch.save(results, args.save)
        print(f'saved {len(results)} tensors to {args.save}')
        return
    saved = torch.load(args.against)
    diff = sorted(k for k in saved.keys() | results.keys()
                  if k not in saved or k not in results
                  or not torch.equal(saved[k], results[k]))
    for k in diff:
        print(f'DIFFERENT: {k}')
    print(f'{len(results) - len(diff)} of {len(saved)} outputs bit-identical'
          f'; {len(diff)} different')
    sys.exit(1 if diff else 0)


if __name__ == '__main__':
    main()
