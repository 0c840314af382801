"""One image through a QANN and its SNN, drawn side by side.

    python tools/image_demo.py IMG CONFIG CHECKPOINT --out qann_vs_snn.png \
        [--timesteps 7] [--neuron signed] [--mode folded] [--score-thr 0.3]

The model runs through its task's mm Inferencer (mmdet ``DetInferencer``,
mmseg ``MMSegInferencer``, mmpretrain ``ImageClassificationInferencer``),
first as the QANN, then converted in place to the SNN; each prediction is
drawn by the task's mm visualizer (boxes, masks, or the top-5 classes), and
the SNN's title gives T and the spikes it fired on this image.
"""
import argparse
import os
import warnings
from types import SimpleNamespace

# setuptools<82 (needed by mmcv and mm config scopes) warns on import
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from mmengine.config import DictAction  # noqa: E402

import fastsnn_mm  # noqa: F401,E402  (registers modules)
from fastsnn_mm.analysis.side_by_side import draw_prediction, side_by_side  # noqa: E402
from fastsnn_mm.analysis.spike_count import count_spikes  # noqa: E402
from fastsnn_mm.spiking.rules import NEURON_RULES  # noqa: E402
from fastsnn_mm.tasks import TASK_WRAPPERS  # noqa: E402
from fastsnn_mm.utils.checkpoint_check import check_checkpoint_fits  # noqa: E402
from fastsnn_mm.utils.launch import (  # noqa: E402
    check_task_packages,
    fail,
    load_config,
    run_main,
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config of a fastsnn_mm model type')
    parser.add_argument('checkpoint', help='QANN or SNN checkpoint')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--timesteps', type=int, default=None,
                        help='SNN time steps T (default: the config\'s '
                        'model.snn, else 2^bits - 1)')
    parser.add_argument('--neuron', choices=sorted(NEURON_RULES),
                        default=None, help='default: the config\'s, else '
                        'signed')
    parser.add_argument('--mode', choices=['folded', 'streaming'],
                        default=None)
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: boxes drawn from this score')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    return parser.parse_args()


def build_inferencer(cfg, checkpoint, device):
    """The task's mm Inferencer for ``cfg``'s model type, weights loaded."""
    package = TASK_WRAPPERS.get(cfg.model.get('type'))
    if package == 'mmdet':
        from mmdet.apis import DetInferencer
        return DetInferencer(cfg, checkpoint, device=device,
                             show_progress=False)
    if package == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(cfg, checkpoint, device=device)
        meta = getattr(inferencer.model, 'dataset_meta', None) or {}
        if meta.get('classes'):  # else mmseg draws Cityscapes' names
            inferencer.visualizer.set_dataset_meta(meta['classes'],
                                                   meta.get('palette'))
        return inferencer
    if package == 'mmpretrain':
        from mmpretrain.apis import ImageClassificationInferencer
        return ImageClassificationInferencer(cfg, pretrained=checkpoint,
                                             device=device)
    fail(f'model type {cfg.model.get("type")} is not a fastsnn_mm task '
         f'model ({", ".join(TASK_WRAPPERS)})')


def predict(inferencer, img):
    """The one data sample an Inferencer returns for ``img``."""
    out = inferencer(img, return_datasamples=True)
    if isinstance(out, dict):
        out = out['predictions']
    return out[0] if isinstance(out, (list, tuple)) else out


def visualizer_of(inferencer):
    if inferencer.visualizer is None:  # mmpretrain builds it on demand
        from mmpretrain.visualization import UniversalVisualizer
        inferencer.visualizer = UniversalVisualizer()
    return inferencer.visualizer


def snn_settings(args, pending):
    """T, neuron and mode: the command line's, else the config's
    ``model.snn``, else the defaults."""
    pending = pending or {}
    return dict(timesteps=args.timesteps or pending.get('timesteps'),
                neuron=args.neuron or pending.get('neuron', 'signed'),
                mode=args.mode or pending.get('mode', 'folded'))


@run_main
def main():
    args = parse_args()
    if not os.path.isfile(args.img):
        fail(f'image {args.img} not found')
    if not os.path.isfile(args.checkpoint):
        fail(f'checkpoint {args.checkpoint} not found')
    if args.timesteps is not None and args.timesteps < 1:
        fail(f'--timesteps must be >= 1, got {args.timesteps}')
    cfg = load_config(SimpleNamespace(
        config=args.config, cfg_options=args.cfg_options, launcher='none',
        work_dir=None, local_rank=0))
    check_task_packages(cfg, args.config)
    pending = cfg.model.pop('snn', None)  # the QANN first
    inferencer = build_inferencer(cfg, args.checkpoint, args.device)
    inferencer.show_progress = False  # mmpretrain's shows it all the same
    model = inferencer.model
    check_checkpoint_fits(model, args.checkpoint, 'test')
    import mmcv
    image = mmcv.imread(args.img, channel_order='rgb')
    classes = getattr(inferencer, 'classes', None)  # classification's
    vis = visualizer_of(inferencer)
    qann = draw_prediction(vis, image, predict(inferencer, args.img),
                           classes, args.score_thr)
    settings = snn_settings(args, pending)
    model.to_snn(**settings)
    predict(inferencer, args.img)  # a new shape's first batch sizes passes
    with count_spikes(model) as spikes:
        sample = predict(inferencer, args.img)
    snn = draw_prediction(vis, image, sample, classes, args.score_thr)
    snn_title = (f'SNN ({settings["neuron"]}): '
                 f'T={model.snn_cfg["timesteps"]}, {spikes.total:,} spikes')
    # the SNN's figures on a line of their own: a panel is narrow
    canvas = side_by_side([('QANN', qann),
                           (snn_title.replace(': ', '\n', 1), snn)])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    mmcv.imwrite(canvas[..., ::-1], args.out)
    print(f'{args.out}: QANN | {snn_title}')


if __name__ == '__main__':
    main()
