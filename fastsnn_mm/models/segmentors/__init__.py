from .snn_encoder_decoder import FastSNNEncoderDecoder

__all__ = ['FastSNNEncoderDecoder']
