"""The test writer of NNabla ``.h5`` files (``tests/nnabla_files.py``, written from the
documented layout, docs/nnabla-xumx.md, independently of ``unmix.hub.nnabla``) produces the
documented names, shapes and sizes. The mapping tests (hub/test_nnabla.py,
models/test_xumx.py) use it to produce files from known PyTorch weights."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from unmix.config import CONFIGS

from ..nnabla_files import XUMX_ORDER, random_state, umx_arrays, write_h5, xumx_arrays

pytestmark = pytest.mark.usefixtures("one_thread")


def test_umx_layout_matches_documented_table(tmp_path):
    state = random_state(CONFIGS["umxhq"], 0)
    path = write_h5(tmp_path / "vocals.h5", umx_arrays(state))
    with h5py.File(path, "r") as fh:
        found = {}
        fh.visititems(
            lambda n, o: (
                found.__setitem__(n, (o.shape, int(o.attrs["index"])))
                if isinstance(o, h5py.Dataset)
                else None
            )
        )
    assert len(found) == 22
    assert sum(int(np.prod(s)) for s, _ in found.values()) == 8_897_448
    by_index = [n for n, _ in sorted(found.items(), key=lambda kv: kv[1][1])]
    assert by_index[:5] == [
        "input_mean",
        "input_scale",
        "output_scale",
        "output_mean",
        "fc1/affine/W",
    ]
    assert found["fc1/affine/W"][0] == (2974, 512)
    assert found["fc1/bn/gamma"][0] == (1, 1, 512)
    assert found["lstm/lstm/weight_l0"][0] == (2, 4, 256, 768)
    assert found["lstm/lstm/weight"][0] == (2, 2, 4, 256, 768)
    assert found["lstm/lstm/bias"][0] == (3, 2, 4, 256)
    assert found["fc2/affine/W"][0] == (1024, 512)
    assert found["fc3/affine/W"][0] == (512, 4098)
    assert found["fc3/bn/var"][0] == (1, 1, 4098)
    # PyTorch state minus 3 num_batches_tracked and minus the 6 bias_hh vectors
    torch_values = sum(v.numel() for k, v in state.items() if "num_batches" not in k)
    assert torch_values - 6 * 1024 == 8_897_448


def test_writer_packs_lstm_gates_input_then_recurrent():
    config = CONFIGS["umxhq"].with_(hidden_size=8, max_bin=5, n_fft=16, n_hop=4, nb_layers=2)
    state = random_state(config, 1)
    arrays = dict(umx_arrays(state))
    w0 = arrays["lstm/lstm/weight_l0"]  # (D, 4, H, I + H)
    assert w0.shape == (2, 4, 4, 12)
    # gate g (index 2), unit 1 of the backward direction: row 2*4 + 1 of the PyTorch matrices
    np.testing.assert_array_equal(w0[1, 2, 1, :8], state["lstm.weight_ih_l0_reverse"][9].numpy())
    np.testing.assert_array_equal(w0[1, 2, 1, 8:], state["lstm.weight_hh_l0_reverse"][9].numpy())
    bias = state["lstm.bias_ih_l1"][5] + state["lstm.bias_hh_l1"][5]
    np.testing.assert_allclose(arrays["lstm/lstm/bias"][1, 0, 1, 1], bias.item())


def test_xumx_layout_has_88_arrays():
    states = {t: random_state(CONFIGS["umx"], k) for k, t in enumerate(XUMX_ORDER)}
    arrays = xumx_arrays(states)
    assert len(arrays) == 88
    assert sum(a.size for _, a in arrays) == 35_589_792
    names = [n for n, _ in arrays]
    assert names[:5] == [
        "input_mean_bass",
        "input_scale_bass",
        "output_scale_bass",
        "output_mean_bass",
        "fc1_bass/affine/W",
    ]
    assert "lstm_other/lstm/weight" in names and "fc3_vocals/bn/var" in names
