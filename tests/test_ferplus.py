"""FER+ votes: the join by row, the majority rule, the targets, and each malformed case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.preprocessing import EMOTIONS
from tests.fixtures import FERPLUS_HEADER, ferplus_row, write_csv, write_folder, write_votes
from train.data import load
from train.faceset import DataError
from train.ferplus import UNORDERED_ROWS, Votes, load_votes, majority_metrics, relabel

HAPPY, SAD, NEUTRAL = EMOTIONS.index("happy"), EMOTIONS.index("sad"), EMOTIONS.index("neutral")


@pytest.fixture()
def fer_csv(tmp_path: Path) -> Path:
    # 14 Training rows (data rows 0-13), then 14 PublicTest rows (14-27), which include
    # two of UNORDERED_ROWS (17 and 23).
    return write_csv(tmp_path / "fer.csv", per_class_train=2, per_class_test=2)


def test_votes_join_each_split_by_row(tmp_path: Path, fer_csv: Path) -> None:
    votes_file = write_votes(tmp_path / "votes.csv", fer_csv, relabel={0: HAPPY})
    sets = load(fer_csv, ("Training", "PublicTest"))
    train = load_votes(votes_file, sets["Training"], "Training")
    test = load_votes(votes_file, sets["PublicTest"], "PublicTest")
    assert train.counts.shape == (len(sets["Training"]), 10)
    expected = sets["Training"].labels.copy()
    expected[0] = HAPPY
    np.testing.assert_array_equal(train.majority(), expected)
    expected_test = sets["PublicTest"].labels.copy()
    expected_test[[17 - 14, 23 - 14]] = -1  # votes not trusted
    np.testing.assert_array_equal(test.majority(), expected_test)


def test_splits_that_do_not_line_up_name_the_first_row(tmp_path: Path, fer_csv: Path) -> None:
    good = write_votes(tmp_path / "votes.csv", fer_csv).read_text().splitlines()
    bad = tmp_path / "bad.csv"
    # Data row 2 (file line 4) claims another split.
    good[3] = good[3].replace("Training", "PublicTest", 1)
    bad.write_text("\n".join(good) + "\n")
    faces = load(fer_csv)["Training"]
    with pytest.raises(DataError, match="data row 2 is 'PublicTest' but FER-2013 row 2 is "
                                        "'Training'"):
        load_votes(bad, faces, "Training")


@pytest.mark.parametrize(("text", "message"), [
    ("a,b\n", "header lacks column"),
    (FERPLUS_HEADER + "\nTraining,x.png,1,2,x,0,0,0,0,0,0,0\n", "line 2: vote counts"),
    (FERPLUS_HEADER + "\nTraining,x.png,1,2,-1,0,0,0,0,0,0,0\n", "line 2: a vote count is neg"),
    (FERPLUS_HEADER + "\n" + ferplus_row("Training", 0) + "\n", "1 rows, but"),
])
def test_malformed_votes_name_file_and_line(tmp_path: Path, fer_csv: Path, text: str,
                                            message: str) -> None:
    path = tmp_path / "votes.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        load_votes(path, load(fer_csv)["Training"], "Training")
    assert str(path) in str(info.value)


def test_votes_need_the_csv_not_a_folder(tmp_path: Path, fer_csv: Path) -> None:
    folder = load(write_folder(tmp_path / "imgs", per_class=1))["Training"]
    votes_file = write_votes(tmp_path / "votes.csv", fer_csv)
    with pytest.raises(DataError, match="image folder has no rows"):
        load_votes(votes_file, folder, "Training")
    with pytest.raises(DataError, match="no such FER\\+ votes file"):
        load_votes(tmp_path / "none.csv", load(fer_csv)["Training"], "Training")


def _votes(*rows: list[int], trusted: list[bool] | None = None) -> Votes:
    counts = np.array(rows, dtype=np.int64)
    return Votes(counts, np.array(trusted or [True] * len(rows)), "votes")


def test_majority_first_column_on_a_tie_and_what_is_left_out() -> None:
    #          neu hap sur sad ang dis fea con unk NF
    votes = _votes([4, 4, 0, 2, 0, 0, 0, 0, 0, 0],   # tie: neutral (first column)
                   [0, 1, 0, 2, 0, 0, 0, 7, 0, 0],   # contempt
                   [0, 0, 0, 0, 0, 0, 0, 0, 4, 6],   # not a face
                   [1, 0, 0, 6, 0, 0, 0, 0, 5, 0],   # sad
                   [0, 9, 0, 0, 0, 0, 0, 0, 0, 1],   # happy, but the row is not trusted
                   trusted=[True, True, True, True, False])
    assert votes.majority().tolist() == [NEUTRAL, -1, -1, SAD, -1]
    assert votes.left_out() == {"untrusted_row": 1, "contempt": 1, "unknown": 0, "NF": 1}
    scored = majority_metrics(votes, np.array([NEUTRAL, 0, 0, HAPPY, HAPPY]))
    assert scored["count"] == 2 and scored["accuracy"] == 0.5
    assert scored["left_out"]["contempt"] == 1


def test_distributions_drop_single_votes_and_non_emotions() -> None:
    #          neu hap sur sad ang dis fea con unk NF
    votes = _votes([6, 1, 0, 3, 0, 0, 0, 0, 0, 0],
                   [1, 1, 1, 0, 0, 0, 0, 2, 5, 0],   # only single emotion votes: keep them
                   [0, 0, 0, 0, 0, 0, 0, 0, 0, 10])  # no emotion at all
    dist = votes.distributions()
    assert dist[0, NEUTRAL] == pytest.approx(6 / 9) and dist[0, SAD] == pytest.approx(3 / 9)
    assert dist[0, HAPPY] == 0.0
    assert dist[1].sum() == pytest.approx(1.0) and dist[1, HAPPY] == pytest.approx(1 / 3)
    assert dist[2].sum() == 0.0


def test_unordered_rows_are_not_trusted(tmp_path: Path) -> None:
    fer_csv = write_csv(tmp_path / "fer.csv", per_class_train=3, per_class_test=1)
    faces = load(fer_csv)["Training"]
    votes = load_votes(write_votes(tmp_path / "v.csv", fer_csv), faces, "Training")
    assert min(UNORDERED_ROWS) == 17 and len(UNORDERED_ROWS) == 159
    assert not votes.trusted[17] and votes.trusted[:17].all()
    assert votes.majority()[17] == -1


def test_relabel_ferplus_keeps_majority_faces_with_their_vote_targets(tmp_path: Path,
                                                                      fer_csv: Path) -> None:
    faces = load(fer_csv)["Training"]
    votes = load_votes(write_votes(tmp_path / "v.csv", fer_csv, relabel={1: SAD}), faces,
                       "Training")
    got = relabel(faces, votes, "ferplus")
    assert len(got) == len(faces)
    assert got.labels[1] == SAD
    assert got.targets is not None and got.targets.shape == (len(faces), len(EMOTIONS))
    np.testing.assert_allclose(got.targets.sum(axis=1), 1.0, rtol=1e-6)
    assert got.targets[1, SAD] == pytest.approx(0.8)


def test_relabel_mixed_blends_votes_into_the_label(tmp_path: Path, fer_csv: Path) -> None:
    faces = load(fer_csv)["Training"]
    votes = load_votes(write_votes(tmp_path / "v.csv", fer_csv, relabel={1: SAD}), faces,
                       "Training")
    got = relabel(faces, votes, "mixed", weight=0.25)
    np.testing.assert_array_equal(got.labels, faces.labels)
    assert got.targets is not None
    own = int(faces.labels[1])
    assert got.targets[1, own] == pytest.approx(0.75 + (0.25 * 0.2 if own == NEUTRAL else 0))
    assert got.targets[1, SAD] == pytest.approx(0.25 * 0.8 + (0.75 if own == SAD else 0))
    with pytest.raises(ValueError, match="unknown mode"):
        relabel(faces, votes, "votes")
