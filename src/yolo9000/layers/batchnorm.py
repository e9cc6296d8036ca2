"""Batch normalisation with darknet's formulas, as a part of a conv layer and as a layer.

darknet normalises with the *unbiased* batch variance and adds eps to the standard deviation,
not the variance: x̂ = (x − μ)/(sqrt(σ²) + 1e-6). Inference uses the rolling statistics the
same way, so published weights give published numbers. Backward is the exact derivative of
this forward formula (not the textbook one with eps inside the square root).
"""
import numpy as np

from ..kernels import core, workspace
from .base import Layer

EPS = 1e-6
MOMENTUM = 0.01   # rolling = .99·rolling + .01·batch


class BatchNorm:
    """Per-channel normalisation + scale; the bias is added by the owner (conv bias)."""

    def __init__(self, channels):
        self.channels = channels
        self.scales = np.ones(channels, np.float32)
        self.rolling_mean = np.zeros(channels, np.float32)
        self.rolling_variance = np.ones(channels, np.float32)
        self.scale_grad = np.zeros(channels, np.float32)
        self.momentum = MOMENTUM    # weight of the new batch in the rolling statistics

    def inference_affine(self, dtype=np.float32):
        """(a, b) such that scale·(x − mean)/(sqrt(var) + eps) = a·x + b, computed in dtype
        (float64 for the ONNX export, which folds them into the convolution's weights)."""
        scales, mean, variance = (p.astype(dtype, copy=False) for p in
                                  (self.scales, self.rolling_mean, self.rolling_variance))
        a = scales / (np.sqrt(variance) + EPS)
        return a.astype(dtype), (-a * mean).astype(dtype)

    def forward_train(self, z, bias, act, out):
        """out = act(scale·x̂ + bias) with x̂ = (z − μ)/(σ + eps) from the batch statistics of
        z (N, C, S) float32 (one fused pass; z itself is kept by the caller for backward) and
        the rolling statistics updated."""
        self._batch_statistics(z)
        core.batchnorm_activate(z, self._mean, self._inv, self.scales, bias, act, out)
        return out

    def forward_train_pooled(self, z, height, width, bias, act, pooled):
        """pooled (N, C, height/2, width/2) = the 2x2/2 maxpool of forward_train's output,
        which is never written (z (N, C, height·width), both sides even, act not logistic);
        backward_pooled is its backward."""
        self._batch_statistics(z)
        core.batchnorm_activate_pooled(z, height, width, self._mean, self._inv, self.scales,
                                       bias, act, pooled, _pooled_scratch(width))
        return pooled

    def _batch_statistics(self, z):
        """The batch's mean and 1/(σ + eps) for the pass after it, the rolling statistics
        updated."""
        c = z.shape[1]
        mean = np.empty(c, np.float64)
        var = np.empty(c, np.float64)
        core.batchnorm_statistics(z, mean, var)
        std = np.sqrt(var)
        self._mean = mean.astype(np.float32)
        self._inv = (1.0 / (std + EPS)).astype(np.float32)
        self._std64 = np.ascontiguousarray(std, dtype=np.float64)
        m = self.momentum
        self.rolling_mean *= np.float32(1 - m)
        self.rolling_mean += (m * mean).astype(np.float32)
        self.rolling_variance *= np.float32(1 - m)
        self.rolling_variance += (m * var).astype(np.float32)

    def backward(self, z, y, dy, bias, act, bias_grad, out):
        """out = dL/dz (N, C, S) for the last forward_train(z, bias, act, y), given dy = dL/dy;
        accumulates dL/dbias and dL/dscale (one fused kernel with the activation's backward;
        out may be dy itself).

        With d = z − μ, σ² = Σd²/(M−1), x̂ = d/(σ+eps) and g = dL/dx̂:
            dL/dz_i = (g_i − mean(g))/(σ+eps) − x̂_i · Σ_j(g_j x̂_j) / (σ·(M−1))"""
        core.batchnorm_activate_backward(dy, y, act, out, bias_grad, z, self._mean,
                                         self._inv, self._std64, self.scales, bias,
                                         self.scale_grad)
        return out

    def backward_pooled(self, z, pooled, dpooled, bias, act, bias_grad, out):
        """backward for the last forward_train_pooled(z, ..., pooled), given dpooled =
        dL/dpooled: each window's gradient goes to its winner (the first of its four values,
        row by row, equal to its maximum), as the maxpool's backward gives it; out (N, C, S)
        is the unpooled gradient, then dL/dz written over it."""
        core.batchnorm_unpool(dpooled, pooled, z, self._mean, self._inv, self.scales, bias,
                              act, out, _pooled_scratch(2 * pooled.shape[3]))
        return self.backward(z, None, out, bias, act, bias_grad, out)


def _pooled_scratch(width):
    """The pooled passes' scratch for maps `width` wide: a row per thread, whole cache
    lines."""
    floats = core.batchnorm_pooled_scratch_floats(width)
    return workspace.borrow((core.get_max_threads(), -(-floats // 16) * 16))


class BatchNormLayer(Layer):
    """darknet's standalone [batchnorm] layer: normalise, scale and bias, no activation."""
    kind = "batchnorm"
    forward_state = ("_z", "_y")

    def __init__(self, in_shape):
        super().__init__(in_shape)
        c = self.in_shape[0]
        self.bn = BatchNorm(c)
        self.biases = np.zeros(c, np.float32)
        self.bias_grad = np.zeros(c, np.float32)
        self.params = {"biases": self.biases, "scales": self.bn.scales,
                       "rolling_mean": self.bn.rolling_mean, "rolling_variance": self.bn.rolling_variance}
        self.grads = {"biases": self.bias_grad, "scales": self.bn.scale_grad}

    def forward(self, x, train=False):
        n, c, h, w = x.shape
        if train:
            self._z = np.ascontiguousarray(x, dtype=np.float32).reshape(n, c, h * w)
            self._y = self.bn.forward_train(self._z, self.biases, core.ACT_LINEAR,
                                            np.empty_like(self._z))
            return self._y.reshape(n, c, h, w)
        y = np.array(x, dtype=np.float32, copy=True).reshape(n, c, h * w)
        a, b = self.bn.inference_affine()
        core.scale_bias_activate(y, a, b + self.biases, core.ACT_LINEAR)
        return y.reshape(n, c, h, w)

    def backward(self, dy, dy_is_scratch=False):
        n, c, h, w = dy.shape
        dy = np.ascontiguousarray(dy, dtype=np.float32).reshape(n, c, h * w)
        out = dy if dy_is_scratch else np.empty_like(dy)
        return self.bn.backward(self._z, self._y, dy, self.biases, core.ACT_LINEAR,
                                self.bias_grad, out).reshape(n, c, h, w)

    def to_onnx(self, graph, x):
        """a·x + b per channel (the rolling statistics, in float64, then float32)."""
        a, b = self.bn.inference_affine(np.float64)
        shape = (-1, 1, 1)
        scaled = graph.op("Mul", [x, graph.constant(a.reshape(shape), "scale")], "scaled")
        return graph.op("Add", [scaled, graph.constant((b + self.biases).reshape(shape), "bias")],
                        "batchnorm")

    def flops(self):
        c, h, w = self.in_shape
        return 2.0 * c * h * w
