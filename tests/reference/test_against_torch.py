"""The NumPy/Cython network against an independent PyTorch reading of the same cfg and
weights (tests/torch_darknet.py, which itself is checked against darknet's golden numbers).
Skipped cleanly when torch is not installed."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch_darknet  # noqa: E402

from yolo9000 import Network  # noqa: E402
from conftest import GOLDEN, REFERENCE_CFG


def close(a, b, tol=1e-4):
    return np.all(np.abs(a - b) <= tol * (1 + np.abs(b)))


@pytest.mark.parametrize("name,size", [("yolov2-tiny-voc", 416), ("yolov2-voc", 416)])
def test_forward_matches_torch_reference_with_random_weights(tmp_path, name, size):
    cfg = REFERENCE_CFG / f"{name}.cfg"
    weights = tmp_path / "random.weights"
    torch_darknet.write_random_darknet_weights(cfg, weights, seed=4)
    ref = torch_darknet.build_torch_net(cfg, return_all=False)
    torch_darknet.load_darknet_weights(ref, weights)
    net = Network.from_cfg(cfg).load_weights(weights)
    x = np.random.default_rng(1).random((1, 3, size, size), dtype=np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = net.forward(x)
    assert got.shape == expected.shape == (1, 125, 13, 13)
    assert close(got, expected), np.abs(got - expected).max()


def assert_gradients_match_autograd(net, ref, last, r, xt, theirs):
    """Backward from dL/d(output of layer `last`) = r in both: the input gradient and every
    convolution's weight, bias and batch-norm scale gradients within 1e-4 of autograd's."""
    net.zero_grads()
    dx = net.backward(r, start=last)
    theirs.backward(torch.from_numpy(r))
    scale = np.abs(xt.grad.numpy()).max()
    assert np.abs(dx - xt.grad.numpy()).max() <= 1e-4 * scale
    convs = [layer for layer in net.layers if layer.kind == "conv"]
    for ours_layer, ref_layer in zip(convs, ref.conv_layers()):
        pairs = [(ours_layer.weight_grad, ref_layer.weight.grad),
                 (ours_layer.bias_grad, ref_layer.bias.grad)]
        if ours_layer.bn is not None:
            pairs.append((ours_layer.bn.scale_grad, ref_layer.scales.grad))
        for a, b in pairs:
            b = b.numpy()
            assert np.abs(a - b).max() <= 1e-4 * max(np.abs(b).max(), 1e-3)


def test_training_gradients_match_autograd():
    """Mini network in training mode (batch statistics): input and every parameter gradient."""
    g = GOLDEN
    net = Network.from_cfg(g / "mini.cfg", width=32, height=32)
    net.load_weights(g / "mini.weights")
    ref = torch_darknet.build_torch_net(g / "mini.cfg", width=32, height=32)
    torch_darknet.load_darknet_weights(ref, g / "mini.weights")
    torch_darknet.set_train_mode_bn(ref)
    rng = np.random.default_rng(3)
    x = rng.random((3, 3, 32, 32), dtype=np.float32)
    last = len(net.layers) - 2          # raw output of the final convolution
    ours = net.forward_all(x, train=True)[last]
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs = ref(xt)[last]
    assert close(ours, theirs.detach().numpy())
    r = rng.standard_normal(ours.shape).astype(np.float32)
    assert_gradients_match_autograd(net, ref, last, r, xt, theirs)


def test_pooled_training_pairs_match_autograd(tmp_path):
    """yolov2-tiny-voc in training mode through Network.forward, which runs a
    batch-normalised convolution and the 2x2/2 maxpool after it as one on maps of 16x16 and
    more (the full activated output never kept, the pooled gradient unpooled from z in
    backward), as two layers below: its output, input gradient and every parameter gradient
    against autograd on the layers one by one."""
    cfg = REFERENCE_CFG / "yolov2-tiny-voc.cfg"
    weights = tmp_path / "random.weights"
    torch_darknet.write_random_darknet_weights(cfg, weights, seed=5)
    net = Network.from_cfg(cfg, width=64, height=64).load_weights(weights)
    ref = torch_darknet.build_torch_net(cfg, width=64, height=64)
    torch_darknet.load_darknet_weights(ref, weights)
    torch_darknet.set_train_mode_bn(ref)
    rng = np.random.default_rng(8)
    x = rng.random((2, 3, 64, 64), dtype=np.float32)
    last = len(net.layers) - 2          # raw output of the final convolution
    seconds = []
    net.forward(x, train=True, layer_seconds=seconds)
    ours = net.forward(x, train=True)
    # the pairs from 64x64 to 16x16 as one, the 8x8 and 4x4 ones as two layers
    assert [i for i, t in enumerate(seconds) if t is None] == [1, 3, 5]
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    outputs = ref(xt)
    theirs = outputs[last]
    assert close(ours, outputs[-1].detach().numpy())
    r = rng.standard_normal(theirs.shape).astype(np.float32)
    assert_gradients_match_autograd(net, ref, last, r, xt, theirs)


def test_classifier_training_step_matches_torch(tmp_path):
    """One darknet-mini training step (batch-norm statistics, softmax cross-entropy from the
    classification task, darknet's SGD with momentum and decay) against PyTorch autograd on an
    independent reading of the same cfg and weights, with the update written out by hand."""
    from types import SimpleNamespace

    from yolo9000.model.zoo import bundled_file
    from yolo9000.training.optim import SGD
    from yolo9000.training.tasks import ClassificationTask

    cfg = bundled_file("darknet-mini.cfg")
    weights = tmp_path / "random.weights"
    torch_darknet.write_random_darknet_weights(cfg, weights, seed=7)
    net = Network.from_cfg(cfg).load_weights(weights)
    ref = torch_darknet.build_torch_net(cfg, return_all=True)
    torch_darknet.load_darknet_weights(ref, weights)
    torch_darknet.set_train_mode_bn(ref)
    rng = np.random.default_rng(5)
    batch, lr, momentum, decay = 6, 0.05, 0.9, 0.0005
    x = rng.random((batch, 3, 64, 64), dtype=np.float32)
    labels = rng.integers(0, 20, batch)

    task = ClassificationTask()
    task.check(net, str(cfg))
    net.zero_grads()
    stats = task.train_minibatch(net, SimpleNamespace(images=x, labels=labels))
    optimizer = SGD(net, momentum=momentum, decay=decay)
    optimizer.step(lr, batch)

    outputs = ref(torch.from_numpy(x))
    logits = outputs[net.classifier - 1].reshape(batch, -1)       # the avgpool's output
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels), reduction="sum")
    loss.backward()
    assert stats["loss"] == pytest.approx(loss.item() / batch, rel=1e-4)
    convs = [layer for layer in net.layers if layer.kind == "conv"]
    assert len(convs) == len(ref.conv_layers()) == 7
    for ours_layer, ref_layer in zip(convs, ref.conv_layers()):
        pairs = [("weights", ours_layer.weights, ref_layer.weight, True),
                 ("biases", ours_layer.biases, ref_layer.bias, False)]
        if ours_layer.bn is not None:
            pairs.append(("scales", ours_layer.bn.scales, ref_layer.scales, False))
        for name, ours_param, ref_param, decayed in pairs:
            w0 = ref_param.detach().numpy().astype(np.float64)
            g = ref_param.grad.numpy().astype(np.float64)
            # darknet: v = -g - decay*batch*w (weights only); w += lr/batch * v
            v = -g - (decay * batch * w0 if decayed else 0.0)
            expected = w0 + lr / batch * v
            change = np.abs(expected - w0).max()
            assert np.abs(ours_param - expected).max() <= 1e-3 * change + 1e-7, name
