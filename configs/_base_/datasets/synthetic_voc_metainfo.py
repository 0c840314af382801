# Class names and palette of the synthetic shapes data: the single source.
#
# Dataset configs inherit this file and use ``{{_base_.synthetic_classes}}``;
# ``fastsnn_mm.datasets.synthetic_voc`` reads it with ``Config.fromfile``, so
# the generator writes exactly these names. Keep it plain data: no imports.
synthetic_classes = ('circle', 'square', 'triangle', 'cross')
synthetic_palette = [(220, 20, 60), (0, 130, 200), (60, 180, 75),
                     (255, 190, 0)]
synthetic_num_classes = len(synthetic_classes)

# Segmentation adds label 0 = background, so class i of the list above is
# label i + 1 in the masks.
synthetic_seg_classes = ('background', ) + synthetic_classes
synthetic_seg_palette = [(0, 0, 0)] + synthetic_palette
synthetic_seg_num_classes = len(synthetic_seg_classes)
