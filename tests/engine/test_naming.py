"""``--filename`` templates: fields, checks (no path escape, every stem its own file), and
the batch errors they lead to."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unmix.engine import OutputOptions, plan_batch
from unmix.engine.naming import FileNames
from unmix.errors import UnmixError


def test_default_layout_puts_the_model_first():
    names = OutputOptions(model="umxl").names()
    assert names.path(Path("OUT"), "live/song", "vocals") == Path("OUT/umxl/live/song/vocals.wav")
    assert names.destination(Path("OUT"), "song") == Path("OUT/umxl/song")
    stems = OutputOptions(model="umxl", fmt="stems").names()
    assert stems.files(Path("OUT"), "song", ("vocals",)) == {
        Path("OUT/umxl/song.stem.mp4"): ("mixture", "vocals")
    }


def test_custom_template_renders_every_field():
    names = FileNames("{model}-{track}_{stem}.{ext}", "mp3", "umxhq")
    assert names.files(Path("o"), "a", ("vocals", "no_vocals")) == {
        Path("o/umxhq-a_vocals.mp3"): ("vocals",),
        Path("o/umxhq-a_no_vocals.mp3"): ("no_vocals",),
    }
    assert names.destination(Path("o"), "a") == Path("o")


@pytest.mark.parametrize(
    ("template", "one_file", "message"),
    [
        ("{track}/{stem}.{extension}", False, "unknown field {extension}"),
        ("{track.__class__}/{stem}", False, "unknown field"),
        ("{stem!r}.{ext}", False, "unknown field {stem!r}"),
        ("{track}/{stem:>9}.{ext}", False, "unknown field {stem:>9}"),
        ("{track}/{stem", False, "--filename"),
        ("{track}.{ext}", False, "gives every stem the same file; put {stem} in it"),
        ("{track}/{stem}.{ext}", True, "holds every stem in one file; leave {stem} out"),
        ("/tmp/{track}/{stem}.{ext}", False, "must be relative to the output folder"),
    ],
)
def test_bad_templates_are_one_line_errors(template, one_file, message):
    with pytest.raises(UnmixError, match=re.escape(message)):
        FileNames(template, "wav", "m", one_file)


def test_paths_that_leave_the_output_folder_are_refused():
    names = FileNames("../{track}/{stem}.{ext}", "wav", "m")
    with pytest.raises(UnmixError, match="would leave the output folder"):
        names.path(Path("o"), "song", "vocals")
    names = FileNames("{track}/{stem}.{ext}", "wav", "m")
    with pytest.raises(UnmixError, match="would leave the output folder"):
        names.path(Path("o"), "..", "vocals")  # an input called "...wav"


def _wav(path: Path) -> Path:
    sf.write(path, np.zeros((100, 1), np.float32), 8000, format="WAV")
    return path


def test_templates_without_track_clash_between_inputs(tmp_path):
    a, b = _wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav")
    plan = plan_batch([a, b], OutputOptions(out_dir=tmp_path / "o", filename="{stem}.{ext}"))
    assert [j.path for j in plan.jobs] == [a]
    assert len(plan.errors) == 1 and "b.wav: its stems would overwrite those of" in plan.errors[0]
    assert "or a --filename with {track}" in plan.errors[0]
    flat = OutputOptions(out_dir=tmp_path / "o", filename="{track}_{stem}.{ext}")
    assert len(plan_batch([a, b], flat).jobs) == 2  # one folder, distinct files


def test_an_input_whose_name_escapes_is_an_error_line_not_a_write(tmp_path):
    weird = _wav(tmp_path / "...wav")  # its track name is ".."
    plan = plan_batch(
        [weird], OutputOptions(out_dir=tmp_path / "o", filename="{track}/{stem}.{ext}")
    )
    assert not plan.jobs and "would leave the output folder" in plan.errors[0]
