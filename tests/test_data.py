"""FER-2013 loaders: CSV, gzip CSV, image folders, and each malformed case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.preprocessing import EMOTIONS
from tests.fixtures import csv_rows, make_faces, write_csv, write_folder
from train.data import load, stratified_sample
from train.faceset import DataError, stratified_split


@pytest.mark.parametrize("name", ["fer.csv", "fer.csv.gz"])
def test_csv_splits_by_usage(tmp_path: Path, name: str) -> None:
    path = write_csv(tmp_path / name, per_class_train=4, per_class_test=2)
    sets = load(path, ("Training", "PublicTest"))
    assert len(sets["Training"]) == 4 * len(EMOTIONS)
    assert len(sets["PublicTest"]) == 2 * len(EMOTIONS)
    assert sets["Training"].images.shape[1:] == (48, 48)
    assert sets["Training"].images.dtype == np.uint8
    assert sets["Training"].class_counts().tolist() == [4] * len(EMOTIONS)


def test_csv_pixels_round_trip(tmp_path: Path) -> None:
    images, labels = make_faces(1, seed=3)
    path = tmp_path / "one.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(csv_rows(images, labels, "Training")))
    got = load(path)["Training"]
    np.testing.assert_array_equal(got.images, images)
    np.testing.assert_array_equal(got.labels, labels)


def _one_row_csv(tmp_path: Path, row: str) -> Path:
    path = tmp_path / "bad.csv"
    good = csv_rows(*make_faces(1), "Training")[0]
    path.write_text(f"emotion,pixels,Usage\n{good}\n{row}\n")
    return path


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("3," + " ".join(["1"] * 100) + ",Training", "line 3: 100 pixel values, expected 2304"),
        ("9," + " ".join(["1"] * 2304) + ",Training", "line 3: unknown emotion label 9"),
        ("x," + " ".join(["1"] * 2304) + ",Training", "line 3: emotion 'x' is not an integer"),
        ("1," + " ".join(["300"] * 2304) + ",Training", "line 3: pixel values must be in 0..255"),
        ("1," + " ".join(["a"] * 2304) + ",Training", "line 3: pixels contain a non-integer"),
    ],
)
def test_csv_malformed_row_names_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = _one_row_csv(tmp_path, row)
    with pytest.raises(DataError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_csv_bad_header_and_missing_split(tmp_path: Path) -> None:
    bad = tmp_path / "hdr.csv"
    bad.write_text("label,image\n1,2\n")
    with pytest.raises(DataError, match="lacks column"):
        load(bad)
    only_train = write_csv(tmp_path / "t.csv", 1, 1)
    with pytest.raises(DataError, match="no rows with Usage 'PrivateTest'"):
        load(only_train, ("PrivateTest",))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.csv")


def test_folder_layout_with_aliases(tmp_path: Path) -> None:
    names = {0: "angry", 1: "disgusted", 2: "fearful", 3: "happy", 4: "sad",
             5: "surprised", 6: "neutral"}
    root = write_folder(tmp_path / "imgs", per_class=2, names=names)
    sets = load(root, ("Training", "PublicTest"))
    assert sets["Training"].class_counts().tolist() == [2] * len(EMOTIONS)
    assert len(sets["PublicTest"]) == 2 * len(EMOTIONS)


def test_folder_images_match_pixels(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "imgs", per_class=1)
    images, labels = make_faces(1, seed=0)
    got = load(root, ("Training",))["Training"]
    order = np.argsort(got.labels)
    np.testing.assert_array_equal(got.images[order], images[np.argsort(labels)])


def test_folder_resizes_other_sizes(tmp_path: Path) -> None:
    import cv2

    d = tmp_path / "r" / "train" / "happy"
    d.mkdir(parents=True)
    cv2.imwrite(str(d / "big.png"), np.full((96, 96), 200, np.uint8))
    got = load(tmp_path / "r")["Training"]
    assert got.images.shape == (1, 48, 48)
    assert int(got.images[0, 10, 10]) == 200


def test_folder_malformed_cases(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="empty class folder") as info:
        load(root)
    assert "happy" in str(info.value)

    (root / "train" / "happy" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        load(root)

    (root / "train" / "happy" / "broken.png").unlink()
    (root / "train" / "bored").mkdir()
    with pytest.raises(DataError, match="unknown class folder 'bored'"):
        load(root)

    with pytest.raises(DataError, match="no folder for split 'PublicTest'"):
        load(root, ("PublicTest",))

    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        load(empty)


def test_stratified_split_and_sample() -> None:
    labels = np.repeat(np.arange(7), [100, 10, 100, 200, 100, 50, 100])
    keep, held = stratified_split(labels, 0.1, seed=1)
    assert len(np.intersect1d(keep, held)) == 0
    assert len(keep) + len(held) == len(labels)
    assert np.bincount(labels[held], minlength=7).tolist() == [10, 1, 10, 20, 10, 5, 10]
    again = stratified_split(labels, 0.1, seed=1)[1]
    np.testing.assert_array_equal(held, again)
    sample = stratified_sample(labels, 66, seed=2)
    assert set(np.unique(labels[sample])) == set(range(7))
