# Fast-SNN step 3 on the 2-bit demo classifier: convert to a signed-IF SNN
# with T = 3 and tune it layer by layer against its QANN, then all weights
# at once (_base_/schedules/layerwise_finetune_demo.py). The log and
# work_dir/layerwise_finetune.json give per layer the mismatch before and
# after, and the top-1 before and after.
#   python tools/train.py \
#       configs/fastsnn_cls/qresnet_synthetic_cls_2bit_layerwise.py \
#       --cfg-options \
#       load_from=work_dirs/qresnet_synthetic_cls_2bit/epoch_10.pth
# 3-bit (T = 7): add model.quant.bits=3 and load_from a 3-bit checkpoint.
# A killed run goes on at the group it had reached with --resume.
_base_ = [
    './qresnet_synthetic_cls_2bit.py',
    '../_base_/schedules/layerwise_finetune_demo.py',
]

load_from = 'work_dirs/qresnet_synthetic_cls_2bit/epoch_10.pth'
train_cfg = dict(_delete_=True, **_base_.layerwise_train_cfg,
                 neuron='signed')
optim_wrapper = dict(_delete_=True, **_base_.layerwise_optim_wrapper)
param_scheduler = []
