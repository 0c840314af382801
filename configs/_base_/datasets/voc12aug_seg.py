# Real PASCAL VOC 2012 segmentation with the SBD augmented masks.
# Stock mmseg settings; see mmseg's dataset docs for making
# SegmentationClassAug and ImageSets/Segmentation/aug.txt.
_base_ = 'mmseg::_base_/datasets/pascal_voc12_aug.py'

data_layout = ('VOC2012 layout {root}/{{JPEGImages,SegmentationClass,'
               'SegmentationClassAug,ImageSets/Segmentation/'
               '{{train,val,aug}}.txt}}')
