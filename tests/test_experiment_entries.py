"""Issue 28: a ``train.losses`` entry may turn Parseval on and override training settings
for itself alone (a sweep of CE's learning rate beside the other losses' options, or
Laplacian + Parseval beside plain losses); configurations that then share a run name are
named apart by the settings that differ."""

from __future__ import annotations

import textwrap

import pytest

from robustbench_graph.errors import RbgError
from robustbench_graph.experiment import spec, units

HEAD = """\
name = "t"
[train]
datasets = ["digits"]
seeds = "0-1"
epochs = 2
"""


def _plan(tmp_path, body: str) -> list[units.Unit]:
    exp = spec.parse(HEAD + textwrap.dedent(body), "t.toml", out=tmp_path / "out")
    return units.plan(exp)


def test_entry_parseval_and_settings_apply_to_that_entry_only(tmp_path) -> None:
    plan = _plan(tmp_path, """
        [[train.losses]]
        name = "ce"
        [[train.losses]]
        name = "ce"
        settings = { lr = 0.1 }
        [[train.losses]]
        name = "laplacian"
        parseval = true
    """)
    trains = {u.run_dir.rsplit("/", 1)[1]: u.train for u in plan if u.kind == "train"}
    assert sorted(trains) == sorted([
        "digits-smallcnn-ce-seed0", "digits-smallcnn-ce-seed1",
        "digits-smallcnn-ce-seed0-lr0.1", "digits-smallcnn-ce-seed1-lr0.1",
        "digits-smallcnn-laplacian+parseval-seed0", "digits-smallcnn-laplacian+parseval-seed1"])
    assert trains["digits-smallcnn-ce-seed0-lr0.1"]["lr"] == 0.1
    assert trains["digits-smallcnn-ce-seed0-lr0.1"]["epochs"] == 2  # [train]'s, kept
    assert trains["digits-smallcnn-ce-seed0"]["parseval"] is False
    assert trains["digits-smallcnn-laplacian+parseval-seed0"]["parseval"] is True


def test_entries_without_settings_keep_their_names(tmp_path) -> None:
    plan = _plan(tmp_path, """
        [[train.losses]]
        name = "ce"
        [[train.losses]]
        name = "gsl"
        options = { clip = 4.0 }
    """)
    names = sorted(u.run_dir.rsplit("/", 1)[1] for u in plan if u.kind == "train")
    assert names == ["digits-smallcnn-ce-seed0", "digits-smallcnn-ce-seed1",
                     "digits-smallcnn-gsl_clip4.0-seed0", "digits-smallcnn-gsl_clip4.0-seed1"]


@pytest.mark.parametrize(("body", "message"), [
    ('[[train.losses]]\nname = "ce"\nwidth_x = 1\n', "unknown key.*width_x"),
    ('[[train.losses]]\nname = "ce"\nparseval = "yes"\n', "parseval"),
    ('[[train.losses]]\nname = "ce"\nsettings = { lr = "fast" }\n', "settings.lr"),
    ('[[train.losses]]\nname = "ce"\nsettings = { loss = "gsl" }\n', "unknown train setting"),
    ('[[train.losses]]\nname = "ce"\nsettings = 3\n', "must be a table"),
])
def test_bad_entries_are_one_line(tmp_path, body, message) -> None:
    with pytest.raises(RbgError, match=message) as err:
        _plan(tmp_path, body)
    assert "\n" not in str(err.value)
