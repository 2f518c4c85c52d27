"""``unmix train --config FILE`` (``unmix.train.configfile``): hostile and malformed
settings files give one bounded line, never a traceback, a huge message or a memory blow-up;
hypothesis fuzzing of the three parsers with the limits in force."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmix.cli import main
from unmix.errors import UnmixError
from unmix.train.config import TrainConfig
from unmix.train.configfile import MAX_BYTES, MAX_DEPTH, read_file

#: longest error line allowed (the path of the file included)
LINE = 600

#: 400 bytes of YAML that expand into about 10^9 strings (PyYAML: a 580 MB message, 2 GB)
ALIAS_BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
hidden_size: *i
"""


def refusal(path: Path) -> str:
    """The one-line error that reading and applying ``path`` gives."""
    with pytest.raises(UnmixError) as caught:
        TrainConfig.from_dict(read_file(path), str(path))
    message = str(caught.value)
    assert "\n" not in message and len(message) < LINE, message[:2000]
    return message


def test_a_yaml_alias_bomb_is_refused_unexpanded(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 450
    assert "aliases" in refusal(path)


BAD_FILES = [
    ("broken.yaml", "hidden_size: [1, 2\nlr: {", "not valid YAML"),
    ("tabs.yaml", "a:\n\t- b\n", "not valid YAML"),
    ("broken.json", '{"lr": 0.1,,}', "not valid JSON"),
    ("broken.toml", "lr = = 1", "not valid TOML"),
    ("list.yaml", "- 1\n- 2\n", "mapping"),
    ("anchor.yaml", "lr: &x 0.1\n", "anchors"),
    ("tag.yaml", "lr: !!python/object:os.system x\n", "not valid YAML"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "larger than"),
    ("deep2.json", '{"a":' * 3000 + "1" + "}" * 3000, "nested deeper"),
    ("deep.toml", "a = " + "[" * 3000 + "]" * 3000, "nested deeper"),
    ("deep.yaml", "a: " + "[" * 3000 + "]" * 3000, "nested deeper"),
    ("nine.json", json.dumps({"model": {"source": [[[[[[[["x"]]]]]]]]}}), "nested deeper"),
    ("latin1.yaml", "source: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("huge_value.json", json.dumps({"hidden_size": "x" * 60_000}), "wrong type"),
    ("huge_key.json", json.dumps({"x" * 60_000: 1}), "unknown setting"),
    ("inf.yaml", "seq_dur: .inf\n", "finite"),
    ("nan.json", '{"lr": NaN}', "--lr"),
    ("bigint.json", '{"lr": 1' + "0" * 400 + "}", "wrong type"),
    ("section.toml", "[model]\nnfft = 512\nnhop = 512\n", "n_hop"),
    ("wrongsection.toml", "[model]\nlr = 1\n", "model.'lr'"),
]


@pytest.mark.parametrize(("name", "text", "words"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_settings_files_are_one_bounded_line(
    tmp_path: Path, name: str, text: str | bytes, words: str
) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    assert words in refusal(path)


def test_a_fifo_or_folder_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "settings.yaml"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    assert "not a readable file" in refusal(fifo)
    (tmp_path / "dir.json").mkdir()
    assert "not a readable file" in refusal(tmp_path / "dir.json")


def test_sections_and_flat_keys_read_alike(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[model]\nn_fft = 2048\nsource = ["bass"]\n[optim]\nlr = 1\n')
    (tmp_path / "b.yaml").write_text("nfft: 2048\ntarget: bass\nlr: 1.0\n")
    a, b = (TrainConfig.from_dict(read_file(tmp_path / n)) for n in ("a.toml", "b.yaml"))
    assert a == b and a.model.n_fft == 2048 and a.targets == ("bass",)
    assert TrainConfig.from_dict(a.to_dict()) == a  # training.json and checkpoints round-trip


def test_the_cli_reports_a_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert main(["train", "--config", str(path), "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "aliases" in err and len(err) < LINE


def _values() -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
        max_leaves=30,
    )


_KEYS = st.sampled_from(["lr", "nfft", "n_hop", "source", "model", "seq-dur", "epochs", "x"])


def _check(path: Path) -> None:
    """A settings file either gives settings or one bounded line."""
    try:
        TrainConfig.from_dict(read_file(path), str(path))
    except UnmixError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < LINE


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    suffix=st.sampled_from([".json", ".yaml", ".toml"]),
    data=st.dictionaries(_KEYS, _values(), max_size=6),
)
def test_fuzz_structured_settings(tmp_path: Path, suffix: str, data: dict[str, object]) -> None:
    import yaml

    path = tmp_path / f"fuzz{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(data))
    elif suffix == ".yaml":
        path.write_text(yaml.safe_dump(data))
    else:
        path.write_text("\n".join(f"{k!s} = {json.dumps(v)}" for k, v in data.items()))
    _check(path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    suffix=st.sampled_from([".json", ".yaml", ".yml", ".toml"]),
    text=st.text(alphabet=st.sampled_from(list("[]{}&*!:,-=\"' \n\tab1.#|>")), max_size=400),
)
def test_fuzz_text_with_the_parsers_metacharacters(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_text(text)
    _check(path)


def test_limits_are_what_the_docs_say() -> None:
    assert MAX_BYTES == 64 * 1024 and MAX_DEPTH == 8
