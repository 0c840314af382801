# Real PASCAL VOC detection: 07+12 trainval for training, VOC2007 test.
# Stock mmdet settings; data under data/VOCdevkit/{VOC2007,VOC2012}.
_base_ = 'mmdet::_base_/datasets/voc0712.py'

data_layout = ('VOCdevkit layout {root}/{{VOC2007,VOC2012}}/{{JPEGImages,'
               'Annotations,ImageSets/Main}} (VOC2007 with test.txt)')
