# DeepLabV3 as a Fast-SNN on PASCAL VOC 2012 + SBD (3-bit activations);
# the model (QResNet-34 + ASPPHead, output stride 8) is in
# _base_/models/deeplab_fastsnn_r34.py.
#   python tools/train.py configs/deeplab_fastsnn_voc12aug.py
#   python tools/test.py configs/deeplab_fastsnn_voc12aug.py \
#       work_dirs/deeplab_fastsnn_voc12aug/iter_20000.pth --compare
# Step 2 of the progressive chain (Fast-SNN: fp32 -> 4 -> 3 -> 2 bits):
# deeplab_fastsnn_voc12aug_fp32.py starts from torchvision's ImageNet
# ResNet-34, _4bit.py loads it, this config loads the 4-bit run, _2bit.py
# loads this one (--cfg-options load_from=None: 3-bit QAT from scratch).
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
load_from = 'work_dirs/deeplab_fastsnn_voc12aug_4bit/iter_20000.pth'
# random states go into each checkpoint, so --resume repeats an unbroken run
custom_hooks = [dict(type='RandomStateHook')]
