"""Batch norm's epsilon is darknet's 1e-6, added to the standard deviation. The other tests'
channels have a variance near 1, where 1e-6 and 1e-5 agree within their tolerance; here a
channel's standard deviation is 1e-5, so the epsilon decides the output (by a factor of ~2
between 1e-6 and 1e-5). Expected values: darknet's formula in float64."""
import numpy as np

from yolo9000.layers.batchnorm import BatchNormLayer

DARKNET_EPS = 1e-6


def small_and_ordinary_channels(rng):
    x = rng.standard_normal((4, 2, 3, 5))
    x[:, 0] *= 1e-5                      # standard deviation ~1e-5
    return x.astype(np.float32)


def test_training_forward_with_a_tiny_variance():
    rng = np.random.default_rng(11)
    x = small_and_ordinary_channels(rng)
    layer = BatchNormLayer((2, 3, 5))
    y = layer.forward(x, train=True)
    z = x.astype(np.float64)
    mean = z.mean(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt(z.var(axis=(0, 2, 3), ddof=1, keepdims=True))      # darknet: unbiased
    expected = (z - mean) / (std + DARKNET_EPS)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_inference_with_a_tiny_rolling_variance():
    rng = np.random.default_rng(12)
    x = small_and_ordinary_channels(rng)
    layer = BatchNormLayer((2, 3, 5))
    layer.bn.rolling_mean[:] = [2e-6, 0.5]
    layer.bn.rolling_variance[:] = [1e-10, 2.0]          # standard deviations 1e-5 and 1.41
    layer.bn.scales[:] = [0.5, 2.0]
    layer.biases[:] = [0.25, -1.0]
    y = layer.forward(x, train=False)
    z = x.astype(np.float64)
    mean = np.array([2e-6, 0.5])[None, :, None, None]
    std = np.sqrt(np.array([1e-10, 2.0], np.float32).astype(np.float64))[None, :, None, None]
    expected = (np.array([0.5, 2.0])[None, :, None, None] * (z - mean) / (std + DARKNET_EPS)
                + np.array([0.25, -1.0])[None, :, None, None])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
