from .snn_single_stage import FastSNNSingleStageDetector

__all__ = ['FastSNNSingleStageDetector']
