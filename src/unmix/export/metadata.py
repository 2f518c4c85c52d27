"""The metadata an exported graph carries, written and checked in one place (no PyTorch).

Every value is a string (ONNX ``metadata_props``); lists and settings are JSON. A user of
another language reads these to know the outputs' names, the rate, the channel count and
the minimum input length; :class:`unmix.export.runtime.OnnxGraph` checks all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import UnmixError

#: value of the ``unmix_format`` key: graph kind and layout version
FORMAT = "unmix.separation-graph/1"
INPUT_NAME = "mixture"
OUTPUT_NAME = "stems"
#: the ONNX opset of the exported graphs (the first with ``STFT`` and ``DFT``)
OPSET = 17
#: the Wiener options stored under ``settings``
SETTING_KEYS = ("niter", "softmask", "residual", "wiener_win_len", "scale_factor", "eps")


@dataclass(frozen=True)
class GraphInfo:
    """What a separation graph declares about itself.

    Attributes:
        outputs: names of the ``stems`` outputs, in order (targets, then ``residual``).
        sample_rate: rate of input and outputs (Hz).
        nb_channels: channels of ``mixture`` and of every stem.
        n_fft: STFT size; ``mixture`` needs more than ``n_fft // 2`` samples.
        n_hop: STFT hop.
        settings: the Wiener options baked in (:data:`SETTING_KEYS`).
        model_config: the model's ``config.json`` (a dictionary).
        version: unmix version that wrote the graph.
        quantization: ``"none"`` or ``"int8"``.
        layout: ``"chunked"`` (Wiener filter and ISTFT in ``Scan`` bodies over runs of
            frames; a third of the memory) or ``"whole"`` (graphs exported before the
            chunked layout existed, and Wiener windows too short for chunks).
    """

    outputs: tuple[str, ...]
    sample_rate: int
    nb_channels: int
    n_fft: int
    n_hop: int
    settings: dict[str, Any]
    model_config: dict[str, Any]
    version: str
    quantization: str = "none"
    layout: str = "whole"

    @property
    def min_samples(self) -> int:
        """Shortest ``mixture`` the graph accepts (reflect padding of the centred STFT)."""
        return self.n_fft // 2 + 1

    def to_metadata(self, model: str = "") -> dict[str, str]:
        """The ``metadata_props`` of the graph."""
        return {
            "unmix_format": FORMAT,
            "unmix_version": self.version,
            "model": model,
            "outputs": json.dumps(list(self.outputs)),
            "sample_rate": str(self.sample_rate),
            "nb_channels": str(self.nb_channels),
            "n_fft": str(self.n_fft),
            "n_hop": str(self.n_hop),
            "min_samples": str(self.min_samples),
            "latency_samples": "0",
            "latency": (
                "offline: stems are aligned with the input (no delay); the graph needs the "
                "whole input (bidirectional model, Wiener statistics over windows)"
            ),
            "settings": json.dumps(self.settings, sort_keys=True),
            "model_config": json.dumps(self.model_config, sort_keys=True),
            "quantization": self.quantization,
            "layout": self.layout,
            "opset": str(OPSET),
            "input": f"{INPUT_NAME}: float32 (nb_channels, nb_samples) at sample_rate",
            "output": f"{OUTPUT_NAME}: float32 (len(outputs), nb_channels, nb_samples)",
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], what: str) -> GraphInfo:
        """Parse and check ``metadata_props``.

        Raises:
            UnmixError: not an unmix graph, or a missing or malformed key (named).
        """
        fmt = meta.get("unmix_format")
        if fmt is None:
            raise UnmixError(
                f"{what} has no unmix metadata (key 'unmix_format'): it was not written by "
                "'unmix export'; export the model with 'unmix export --model M --out FILE.onnx'"
            )
        if fmt != FORMAT:
            raise UnmixError(
                f"{what} is a {fmt!r} graph; this unmix reads {FORMAT!r}: re-export it"
            )
        try:
            info = cls(
                outputs=tuple(_json(meta, "outputs", list)),
                sample_rate=_int(meta, "sample_rate", 1000, 1_000_000),
                nb_channels=_int(meta, "nb_channels", 1, 2),
                n_fft=_int(meta, "n_fft", 16, 1 << 16),
                n_hop=_int(meta, "n_hop", 1, 1 << 16),
                settings=_json(meta, "settings", dict),
                model_config=_json(meta, "model_config", dict),
                version=meta["unmix_version"],
                quantization=meta.get("quantization", "none"),
                layout=meta.get("layout", "whole"),
            )
        except KeyError as exc:
            raise UnmixError(f"{what}: metadata key {exc} is missing; re-export it") from None
        names_ok = info.outputs and all(isinstance(n, str) and n for n in info.outputs)
        if not names_ok or len(set(info.outputs)) != len(info.outputs):
            raise UnmixError(f"{what}: metadata 'outputs' must be distinct names; re-export it")
        if sorted(info.settings) != sorted(SETTING_KEYS):
            raise UnmixError(f"{what}: metadata 'settings' must hold {list(SETTING_KEYS)}")
        return info


def _int(meta: dict[str, str], key: str, low: int, high: int) -> int:
    text = meta[key]
    if not text.isdigit() or not low <= int(text) <= high:
        raise UnmixError(f"metadata {key!r} must be an integer in {low}..{high}, got {text[:40]!r}")
    return int(text)


def _json(meta: dict[str, str], key: str, kind: type) -> Any:
    text = meta[key]
    try:
        value = json.loads(text) if len(text) <= 1 << 16 else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, kind):
        raise UnmixError(f"metadata {key!r} must be a JSON {kind.__name__}, got {text[:40]!r}")
    return value
