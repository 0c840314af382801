"""One picture of a QANN's and an SNN's predictions on the same image.

Each prediction is drawn by the task's own mm visualizer (boxes by mmdet's
``DetLocalVisualizer``, masks by mmseg's ``SegLocalVisualizer``, the top-5
classes by mmpretrain's ``UniversalVisualizer``), so the panels look as mm
users know them; the panels are then set side by side under their titles.
"""
import numpy as np

#: the shorter side of a drawn panel is scaled to at least this many pixels
#: (synthetic images are 32-160 px; their labels would not read)
MIN_PANEL_SIDE = 320
#: classes a classification panel lists
TOPK = 5
#: room above the panels for two lines of title
TITLE_BAND = 44


def draw_prediction(visualizer, image, sample, classes=None,
                    score_thr=0.3) -> np.ndarray:
    """``image`` (RGB) with ``sample``'s prediction drawn by ``visualizer``.

    The kind of prediction picks the drawing: ``pred_instances`` (boxes),
    ``pred_sem_seg`` (masks) or ``pred_score`` (the top-5 classes).
    """
    if 'pred_instances' in sample:
        visualizer.add_datasample('qann_vs_snn', image, sample, draw_gt=False,
                                  pred_score_thr=score_thr)
        return _at_least(visualizer.get_image(), MIN_PANEL_SIDE)
    if 'pred_sem_seg' in sample:
        visualizer.add_datasample('qann_vs_snn', image, sample, draw_gt=False,
                                  with_labels=True)
        return _at_least(visualizer.get_image(), MIN_PANEL_SIDE)
    if 'pred_score' in sample:
        return _draw_topk(visualizer, image, sample, classes)
    raise TypeError(f'{type(sample).__name__} holds no prediction to draw '
                    '(pred_instances, pred_sem_seg or pred_score)')


def _draw_topk(visualizer, image, sample, classes):
    """mmpretrain draws every label in ``pred_label``: hand it the top k."""
    top = sample.clone()
    k = min(TOPK, top.pred_score.numel())
    top.set_pred_label(top.pred_score.topk(k).indices)
    rescale = max(1.0, MIN_PANEL_SIDE / min(image.shape[:2]))
    return visualizer.visualize_cls(image, top, classes=classes,
                                    draw_gt=False, rescale_factor=rescale)


def _at_least(image, side):
    import mmcv
    scale = side / min(image.shape[:2])
    return mmcv.imrescale(image, scale) if scale > 1 else image


def side_by_side(panels, gap: int = 8) -> np.ndarray:
    """``panels``: [(title, RGB image)] -> one RGB image, panels left to
    right on white, each under its title of one or two lines (drawn by
    mmengine's ``Visualizer``)."""
    from mmengine.visualization import Visualizer
    height = max(img.shape[0] for _, img in panels)
    width = sum(img.shape[1] for _, img in panels) + gap * (len(panels) - 1)
    canvas = np.full((height + TITLE_BAND, width, 3), 255, np.uint8)
    positions, x = [], 0
    for _, img in panels:
        canvas[TITLE_BAND:TITLE_BAND + img.shape[0], x:x + img.shape[1]] = img
        positions.append([x + 4, 4])
        x += img.shape[1] + gap
    vis = Visualizer(image=canvas)
    vis.draw_texts([title for title, _ in panels], np.array(positions),
                   colors='black', font_sizes=12)
    return vis.get_image()
