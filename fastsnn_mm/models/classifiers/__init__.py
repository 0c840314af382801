from .snn_image_classifier import FastSNNImageClassifier

__all__ = ['FastSNNImageClassifier']
