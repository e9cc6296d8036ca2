"""Property-based fuzzing of the dataset readers: any label file, VOC XML or COCO JSON gives a
dataset or a UserError (one line naming the file), never another exception."""
import json

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from fuzzing import FUZZ, arbitrary_or_mutated  # noqa: E402
from yolo9000.data.formats import load_dataset  # noqa: E402
from yolo9000.errors import UserError  # noqa: E402


def load_or_user_error(path, **kwargs):
    """The property: a dataset or a UserError. Anything else propagates and fails the test."""
    for strict in (False, True):
        try:
            load_dataset(path, strict=strict, **kwargs)
        except UserError as e:
            assert "\n" not in str(e)


@pytest.fixture
def image_folder(tmp_path):
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "a.jpg")
    return tmp_path


VALID_LABEL = b"0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.5 0.5 0.9\n"


@FUZZ
@given(arbitrary_or_mutated(VALID_LABEL))
def test_yolo_label_file(image_folder, content):
    (image_folder / "a.txt").write_bytes(content)
    load_or_user_error(image_folder)


VALID_XML = (b"<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height>"
             b"<depth>3</depth></size><object><name>dog</name><difficult>0</difficult><bndbox>"
             b"<xmin>2</xmin><ymin>3</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object>"
             b"</annotation>")


@pytest.fixture
def voc_folder(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "JPEGImages" / "a.jpg")
    return tmp_path


@FUZZ
@given(arbitrary_or_mutated(VALID_XML))
def test_voc_xml(voc_folder, content):
    (voc_folder / "Annotations" / "a.xml").write_bytes(content)
    load_or_user_error(voc_folder)


VALID_COCO = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
    "annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [2, 3, 20, 10],
                     "iscrowd": 0}],
    "categories": [{"id": 3, "name": "dog"}],
}

# Any JSON value: what a hand-edited or foreign file puts where a number or list belongs.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=8)


@st.composite
def coco_with_a_field_replaced(draw):
    """The valid file with one field (at any depth) replaced by an arbitrary JSON value."""
    data = json.loads(json.dumps(VALID_COCO))
    section = draw(st.sampled_from(["images", "annotations", "categories"]))
    entry = data[section][0]
    key = draw(st.sampled_from(sorted(entry)))
    if draw(st.booleans()):
        entry[key] = draw(json_values)
    else:
        data[section] = draw(st.sampled_from([data[section] + [draw(json_values)],
                                              draw(json_values)]))
    return json.dumps(data).encode()


@pytest.fixture
def coco_folder(tmp_path):
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "a.jpg")
    return tmp_path


@FUZZ
@given(arbitrary_or_mutated(json.dumps(VALID_COCO).encode()))
def test_coco_json_bytes(coco_folder, content):
    (coco_folder / "instances_x.json").write_bytes(content)
    load_or_user_error(coco_folder / "instances_x.json")


@FUZZ
@given(coco_with_a_field_replaced())
def test_coco_json_fields(coco_folder, content):
    (coco_folder / "instances_x.json").write_bytes(content)
    load_or_user_error(coco_folder / "instances_x.json")

