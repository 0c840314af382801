# DeepLabV3 as a Fast-SNN on PASCAL VOC 2012 + SBD (3-bit activations);
# the model (QResNet-34 + ASPPHead, output stride 8) is in
# _base_/models/deeplab_fastsnn_r34.py.
#   python tools/train.py configs/deeplab_fastsnn_voc12aug.py
#   python tools/test.py configs/deeplab_fastsnn_voc12aug.py \
#       work_dirs/deeplab_fastsnn_voc12aug/iter_20000.pth --compare
# Progressive training (Fast-SNN): train deeplab_fastsnn_voc12aug_4bit.py
# first, then this config with
#   --cfg-options \
#   load_from=work_dirs/deeplab_fastsnn_voc12aug_4bit/iter_20000.pth
# and deeplab_fastsnn_voc12aug_2bit.py from this one's checkpoint.
# For ImageNet weights set backbone.init_cfg=dict(type='Pretrained', ...)
# to a QResNet-34 checkpoint.
_base_ = [
    './_base_/models/deeplab_fastsnn_r34.py',
    './_base_/datasets/voc12aug_seg.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
default_scope = 'mmseg'

crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size),
             decode_head=dict(num_classes=21))
optim_wrapper = dict(
    # clips are thresholds, not weights: no decay pulling them to zero
    paramwise_cfg=dict(custom_keys={'alpha': dict(decay_mult=0.0)}))
# random states go into each checkpoint, so --resume repeats an unbroken run
custom_hooks = [dict(type='RandomStateHook')]
