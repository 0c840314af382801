"""mm's Inferencers run our models as QANN and as SNN, on the synthetic
data's images; tools/image_demo.py draws both predictions side by side."""
import glob
import os.path as osp
import re
import runpy
import sys

import pytest
import torch
from conftest import REPO, tiny_cls_config

pytestmark = pytest.mark.usefixtures('one_thread')

#: our synthetic demo configs, shrunk: (config, overrides, package)
TASKS = {
    'detection': ('configs/yolo_fastsnn_synthetic.py', {
        'model.backbone.base_channels': 8,
        'model.neck.in_channels': [128, 64, 32],
        'model.neck.out_channels': [64, 32, 16],
        'model.bbox_head.in_channels': [64, 32, 16],
        'model.bbox_head.out_channels': [64, 32, 16],
        'test_dataloader.dataset.pipeline.1.scale': (64, 64)}, 'mmdet'),
    'segmentation': ('configs/deeplab_fastsnn_synthetic.py', {
        'load_from': None,
        'test_dataloader.dataset.pipeline.1.scale': (64, 64)}, 'mmseg'),
    'classification': (None, {}, 'mmpretrain'),
}


def tiny_config(task, root, tmp_path):
    from mmengine.config import Config
    config, overrides, _ = TASKS[task]
    if config is None:
        return tiny_cls_config(root, tmp_path)
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict(overrides)
    return cfg


def an_image(task, root):
    sub = 'classification/val/*/*.png' if task == 'classification' \
        else 'VOC2007/JPEGImages/*.jpg'
    return sorted(glob.glob(osp.join(root, sub)))[0]


def save_checkpoint(cfg, package, path):
    """Weights as a trained checkpoint holds them: BN statistics that are
    not the identity, and the data set's classes in the meta (Inferencers
    read their labels from it)."""
    import importlib
    registry = importlib.import_module(f'{package}.registry')
    from mmengine.registry import init_default_scope
    init_default_scope(package)
    torch.manual_seed(0)
    model = registry.MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
    meta = dict(cfg.test_dataloader.dataset.metainfo)
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': meta}}, path)
    return path


def inferencer(package, cfg, ckpt):
    if package == 'mmdet':
        from mmdet.apis import DetInferencer
        return DetInferencer(cfg, ckpt, device='cpu', show_progress=False)
    if package == 'mmseg':
        from mmseg.apis import MMSegInferencer
        return MMSegInferencer(cfg, ckpt, device='cpu')
    from mmpretrain.apis import ImageClassificationInferencer
    return ImageClassificationInferencer(cfg, pretrained=ckpt, device='cpu')


def predict(inf, img):
    out = inf(img, return_datasamples=True)
    if isinstance(out, dict):
        out = out['predictions']
    return out[0] if isinstance(out, (list, tuple)) else out


def prediction(sample):
    """The tensors a task predicts, to compare two runs."""
    if 'pred_instances' in sample:
        p = sample.pred_instances
        return [p.bboxes, p.scores, p.labels]
    if 'pred_sem_seg' in sample:
        return [sample.pred_sem_seg.data, sample.seg_logits.data]
    return [sample.pred_score]


@pytest.mark.parametrize('task', sorted(TASKS))
def test_inferencer_runs_qann_and_snn(task, tiny_voc, tmp_path):
    cfg = tiny_config(task, tiny_voc, tmp_path)
    package = TASKS[task][2]
    ckpt = save_checkpoint(cfg, package, str(tmp_path / 'model.pth'))
    img = an_image(task, tiny_voc)

    qann = inferencer(package, cfg.copy(), ckpt)
    assert not qann.model.is_snn
    qann_pred = prediction(predict(qann, img))
    assert not qann.model.is_snn

    snn_cfg = cfg.copy()
    snn_cfg.model.snn = dict(timesteps=3)  # what a user's config says
    snn = inferencer(package, snn_cfg, ckpt)
    snn_pred = prediction(predict(snn, img))
    assert snn.model.is_snn and snn.model.snn_cfg['timesteps'] == 3
    assert snn.model.neurons

    # the same SNN as converting the QANN inferencer's model in place
    qann.model.to_snn(timesteps=3)
    again = prediction(predict(qann, img))
    for a, b in zip(snn_pred, again):
        # the same SNN, plan and image: the same sums
        assert torch.equal(a, b)
    assert len(qann_pred) == len(snn_pred)


@pytest.mark.parametrize('task', sorted(TASKS))
def test_image_demo_draws_qann_and_snn_side_by_side(task, tiny_voc, tmp_path,
                                                    monkeypatch, capsys):
    import mmcv
    cfg = tiny_config(task, tiny_voc, tmp_path)
    config = str(tmp_path / 'config.py')
    cfg.dump(config)
    ckpt = save_checkpoint(cfg, TASKS[task][2], str(tmp_path / 'model.pth'))
    out = tmp_path / 'demo' / 'qann_vs_snn.png'
    script = osp.join(REPO, 'tools', 'image_demo.py')
    monkeypatch.setattr(sys, 'argv', [
        script, an_image(task, tiny_voc), config, ckpt, '--timesteps', '3',
        '--out', str(out)])
    runpy.run_path(script, run_name='__main__')
    said = re.search(re.escape(str(out)) +
                     r': QANN \| SNN \(signed\): T=3, ([\d,]+) spikes',
                     capsys.readouterr().out)
    assert said and int(said.group(1).replace(',', '')) > 0
    picture = mmcv.imread(str(out))
    assert picture.shape[1] > 2 * 320 and picture.shape[0] > 320
