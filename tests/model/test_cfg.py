"""cfg keys and the layer registry: a key no layer reads is an error at its file:line, darknet's
own options we ignore are accepted, every shipped and reference cfg loads cleanly."""
import warnings

import pytest

from yolo9000 import Network, UserError
from yolo9000.layers.base import Layer
from yolo9000.model import registry
from yolo9000.model.network import NetOptions
from yolo9000.model.zoo import bundled_models
from yolo9000.training.optim import learning_rate
from conftest import GOLDEN, REFERENCE_CFG

HEAD = "[net]\nwidth=32\nheight=32\nchannels=3\n"          # lines 1-4
CONV = "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"   # +6 lines


def build(tmp_path, text):
    path = tmp_path / "net.cfg"
    path.write_text(text)
    return path, lambda: Network.from_cfg(path)


@pytest.mark.parametrize("text,line,section,key", [
    (HEAD + "[convolutional]\nfilterz=32\nsize=3\n", 6, "convolutional", "filterz"),
    (HEAD + "[convolutional]\nbatch_normalise=1\nfilters=4\n", 6, "convolutional", "batch_normalise"),
    (HEAD + "widht=32\n" + CONV, 5, "net", "widht"),
    (HEAD + CONV + "[maxpool]\nsize=2\nstrides=2\n", 13, "maxpool", "strides"),
    (HEAD + CONV + "[route]\nlayers=-1\nlayer=-1\n", 13, "route", "layer"),
    (HEAD + CONV + "[reorg]\nstride=2\nreverse=0\nstrid=2\n", 14, "reorg", "strid"),
    (HEAD + CONV + "[avgpool]\nsize=2\n", 12, "avgpool", "size"),
    (HEAD + "[convolutional]\nfilters=40\nsize=1\nactivation=linear\n[region]\nclasses=3\nnum=5\n"
     "anchors=1,1, 2,2, 3,3, 4,4, 5,5\nclases=3\n", 13, "region", "clases"),
])
def test_key_no_layer_reads_is_an_error_at_its_line(tmp_path, text, line, section, key):
    path, make = build(tmp_path, text)
    with pytest.raises(UserError) as e:
        make()
    assert str(e.value) == (f"{path}:{line}: [{section}] key '{key}' is not a darknet option "
                            "for this layer")


def test_first_unread_key_is_reported(tmp_path):
    path, make = build(tmp_path, HEAD + "[convolutional]\nfilters=4\nzzz=1\naaa=2\n")
    with pytest.raises(UserError, match=rf"^{path}:7: \[convolutional\] key 'zzz'"):
        make()


def test_darknet_options_without_effect_are_accepted(tmp_path):
    """Options darknet reads that only steer its training: accepted and without effect."""
    _, make = build(tmp_path, HEAD + "max_crop=448\naspect=.75\nclip=1\n[convolutional]\n"
                    "filters=4\nsize=1\nstopbackward=1\nlearning_rate=.1\ndot=.1\n[softmax]\n"
                    "noloss=1\n[cost]\ntype=sse\n")
    net = make()
    assert [layer.kind for layer in net.layers] == ["conv", "softmax", "cost"]


@pytest.mark.parametrize("body,option,default,message", [
    # change the weights' layout in the file
    ("[convolutional]\nfilters=4\n", "dontload=1", "dontload=0",
     "[convolutional] dontload=1 is not supported (only dontload=0)"),
    ("[convolutional]\nfilters=4\n", "flipped=1", "flipped=0", "flipped=1 is not supported"),
    # change what the layer computes
    ("[convolutional]\nfilters=4\n", "xnor=1", "xnor=0", "xnor=1 is not supported"),
    (CONV + "[reorg]\nstride=2\n", "extra=3", "extra=0", "[reorg] extra=3 is not supported"),
])
def test_unsupported_darknet_options_are_errors_unless_default(tmp_path, body, option, default,
                                                               message):
    path, make = build(tmp_path, HEAD + body + option + "\n")
    line = (HEAD + body).count("\n") + 1
    with pytest.raises(UserError) as e:
        make()
    assert str(e.value).startswith(f"{path}:{line}: ") and message in str(e.value)
    # at darknet's default the option changes nothing, so it is accepted
    _, make = build(tmp_path, HEAD + body + default + "\n")
    make()


def test_softmax_tree_builds_a_hierarchical_classifier(tmp_path):
    """[softmax] tree= (the WordTree classifier): found next to the cfg; a tree whose size
    does not match the channels, or a missing file, is an error at the section's line."""
    (tmp_path / "small.tree").write_text((GOLDEN / "small.tree").read_text())
    conv10 = CONV.replace("filters=4", "filters=10")
    _, make = build(tmp_path, HEAD + conv10 + "[avgpool]\n[softmax]\ntree=small.tree\n")
    net = make()
    softmax = net.layers[net.classifier]
    assert softmax.tree.n == 10 and softmax.tree.parent.tolist()[-2:] == [2, 2]
    path, make = build(tmp_path, HEAD + CONV + "[avgpool]\n[softmax]\ntree=small.tree\n")
    with pytest.raises(UserError) as e:
        make()
    assert str(e.value).startswith(f"{path}:12: [softmax]") and "filters=10" in str(e.value)
    path, make = build(tmp_path, HEAD + conv10 + "[avgpool]\n[softmax]\ntree=nope.tree\n")
    with pytest.raises(UserError, match=r"net\.cfg:12: .*tree file 'nope\.tree' not found"):
        make()


def test_repeated_key_with_another_value_is_an_error(tmp_path):
    path, make = build(tmp_path, HEAD + "[convolutional]\nfilters=4\nsize=3\nfilters=8\n")
    with pytest.raises(UserError) as e:
        make()
    assert str(e.value).startswith(f"{path}:8: [convolutional] filters=8 repeats filters=4 of line 6")
    # darknet reads the first; an identical repeat (yolo9000.cfg has two batch=1) is harmless
    _, make = build(tmp_path, HEAD + "[convolutional]\nfilters=4\nsize=3\nfilters=4\n")
    assert make().layers[0].filters == 4


@pytest.mark.parametrize("text,line,message", [
    (HEAD + "[convolushional]\nfilters=4\n", 5, "unknown section [convolushional] (layer types: "),
    (HEAD + CONV + "[net]\nwidth=32\n", 11, "[net] belongs at the top of the cfg only"),
])
def test_unknown_sections(tmp_path, text, line, message):
    path, make = build(tmp_path, text)
    with pytest.raises(UserError) as e:
        make()
    assert str(e.value).startswith(f"{path}:{line}: {message}")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("cfg", [GOLDEN / "mini.cfg", GOLDEN / "tree.cfg"] + [
    name for name in bundled_models() if not (REFERENCE_CFG / f"{name}.cfg").exists()])
def test_every_shipped_cfg_loads_cleanly(cfg):
    """The published ones (tests/fixtures/cfg, and the bundled copies by name) are built by
    test_network.test_reference_cfgs_parse_with_right_shapes; these are the others."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = Network.from_cfg(cfg)
    assert all(s.used >= set(s.options) for s in net.config.sections)


def test_every_reference_cfg_section_is_fully_read():
    """Each of darknet's published cfgs in tests/fixtures/cfg, at a small input size (the layers'
    keys do not depend on it): every key of every section is read or knowingly ignored."""
    for path in sorted(REFERENCE_CFG.glob("*.cfg")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            net = Network.from_cfg(path, width=64, height=64)
        unread = [(s.type, k) for s in net.config.sections for k in s.options if k not in s.used]
        assert unread == [], path.name


class ScaleLayer(Layer):
    """A layer type the package does not have: multiplies by a constant."""
    kind = "scale"

    def __init__(self, in_shape, factor):
        super().__init__(in_shape)
        self.factor = factor

    @classmethod
    def from_section(cls, section, in_shape, context):
        return cls(in_shape, section.get_float("factor", 1.0))

    def forward(self, x, train=False):
        return x * self.factor


def test_a_new_layer_type_is_one_registry_entry(tmp_path, monkeypatch):
    import numpy as np
    monkeypatch.setitem(registry.LAYER_TYPES, "scale", ScaleLayer)
    _, make = build(tmp_path, "[net]\nwidth=4\nheight=4\nchannels=2\n[scale]\nfactor=3\n")
    net = make()
    x = np.ones((1, 2, 4, 4), np.float32)
    assert np.all(net.forward(x) == 3)
    _, make = build(tmp_path, "[net]\nwidth=4\nheight=4\nchannels=2\n[scale]\nfactr=3\n")
    with pytest.raises(UserError, match="key 'factr' is not a darknet option"):
        make()


def test_exp_policy_reads_gamma(tmp_path):
    path = tmp_path / "exp.cfg"
    path.write_text("[net]\nlearning_rate=0.1\npolicy=exp\ngamma=0.5\n" + CONV)
    options = Network.from_cfg(path).options
    assert isinstance(options, NetOptions)
    assert learning_rate(options, 3) == pytest.approx(0.1 * 0.125)


# -- classifier cfgs ---------------------------------------------------------------------------
def _sections_of(text):
    from yolo9000.model.cfg import parse_cfg_text
    return parse_cfg_text(text, "adapted").sections


def test_adapting_a_classifier_sets_its_last_convolution_to_the_class_count():
    from yolo9000.model.cfg import adapt_cfg
    from yolo9000.model.zoo import bundled_file
    text = bundled_file("darknet19.cfg").read_text()
    adapted, changes = adapt_cfg(text, classes=7, source="darknet19.cfg")
    sections = _sections_of(adapted)
    convs = [s for s in sections if s.type == "convolutional"]
    assert convs[-1].options["filters"] == "7"
    # every other convolution is untouched (the 1000 of ImageNet was only in the last one)
    original = [s for s in _sections_of(text) if s.type == "convolutional"]
    assert [s.options["filters"] for s in convs[:-1]] == [s.options["filters"] for s in original[:-1]]
    assert changes == ["classes (filters of the last convolution) 1000 -> 7"]


def test_a_classifier_cfg_with_a_new_size_scales_its_crop_sizes():
    from yolo9000.model.cfg import adapt_cfg
    from yolo9000.model.zoo import bundled_file
    adapted, changes = adapt_cfg(bundled_file("darknet-mini.cfg").read_text(), classes=20,
                                 width=128, height=128)
    net = _sections_of(adapted)[0].options
    assert (net["width"], net["min_crop"], net["max_crop"]) == ("128", "128", "160")
    assert "min_crop 64 -> 128 (follows the input size)" in changes


def test_classifier_cfgs_that_cannot_be_adapted_say_why():
    from yolo9000.model.cfg import adapt_cfg
    base = ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=4\nsize=1\n"
            "activation=linear\n{between}[softmax]\n{groups}")
    with pytest.raises(UserError, match="groups=1"):
        adapt_cfg(base.format(between="[avgpool]\n", groups="groups=2\n"), classes=3)
    with pytest.raises(UserError, match="must follow its last"):
        adapt_cfg(base.format(between="[avgpool]\n[route]\nlayers=-1\n", groups=""), classes=3)
    with pytest.raises(UserError, match="anchors belong to a detector"):
        adapt_cfg(base.format(between="[avgpool]\n", groups=""), classes=3, anchors=[1, 1])
    with pytest.raises(UserError, match="neither a detector"):
        adapt_cfg("[net]\nwidth=32\nheight=32\n[maxpool]\nsize=2\nstride=2\n", classes=3)


def test_bundled_mini_cfgs_share_their_first_eleven_layers():
    """The backbone transfer `--cutoff 11` from darknet-mini to yolov2-mini relies on it."""
    from yolo9000.model.network import Network
    mini = Network.from_cfg("darknet-mini")
    detector = Network.from_cfg("yolov2-mini")
    assert mini.classifier == 13 and detector.region is not None
    for a, b in zip(mini.layers[:11], detector.layers[:11]):
        assert a.kind == b.kind
        assert {k: v.shape for k, v in a.params.items()} == {k: v.shape for k, v in b.params.items()}
    assert mini.layers[11].kind == "conv" and mini.layers[11].filters == 20
    assert detector.layers[11].kind == "conv" and detector.layers[11].filters == 512
