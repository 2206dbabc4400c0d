"""Neural-network building blocks: convolution (im2col + GEMM), layers and functional ops."""
from .._api import conv2d
from .conv import col2im, conv2d_backward, im2col
from .functional import avg_pool2d, batch_norm, cross_entropy, log_softmax, max_pool2d, relu, sigmoid, tanh
from .layers import (AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, Module,
                     ReLU, Sequential)

__all__ = ["conv2d", "conv2d_backward", "im2col", "col2im", "max_pool2d", "avg_pool2d", "relu", "sigmoid", "tanh",
           "log_softmax", "cross_entropy", "batch_norm", "Module", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d",
           "ReLU", "Flatten", "Sequential", "BatchNorm2d", "Dropout", "GlobalAvgPool2d"]
