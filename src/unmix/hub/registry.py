"""The model zoo as data: name → weight files (URL, SHA-256 prefix), licence, config."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import CONFIGS, ModelConfig

ZENODO = "https://zenodo.org/records/{record}/files/{file}"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable file.

    Attributes:
        target: target name the file holds weights for (or ``"*"`` for a joint file).
        url: where to download it.
        sha256: expected SHA-256 prefix (hex, at least 8 characters), or ``""`` when unknown
            (trust on first use: the first download's hash is recorded in the cache).
        filename: name in the cache.
    """

    target: str
    url: str
    sha256: str
    filename: str


@dataclass(frozen=True)
class ModelBundle:
    """A released model.

    Attributes:
        name: registry name.
        config: architecture and STFT settings.
        files: weight files, one per target (UMX) or one joint file.
        licence: weight licence as published.
        description: one line for ``unmix models``.
        notice: printed whenever the model is used (licence restrictions), or ``""``.
        fmt: ``"pth"``, ``"safetensors"``, ``"nnabla-zip"`` or ``"nnabla-h5"``.
        packaged: folder inside the installed package that holds the files (no download).
    """

    name: str
    config: ModelConfig
    files: tuple[WeightFile, ...]
    licence: str
    description: str
    notice: str = ""
    fmt: str = "pth"
    packaged: str = ""
    aliases: tuple[str, ...] = field(default=())


def _zenodo(record: int, names: dict[str, tuple[str, str]]) -> tuple[WeightFile, ...]:
    return tuple(
        WeightFile(target, ZENODO.format(record=record, file=file), sha, file)
        for target, (file, sha) in names.items()
    )


BUNDLES: dict[str, ModelBundle] = {}


def register(bundle: ModelBundle) -> ModelBundle:
    """Add a bundle to the registry (names must be unique)."""
    if bundle.name in BUNDLES:
        raise ValueError(f"model {bundle.name!r} is registered twice")
    BUNDLES[bundle.name] = bundle
    return bundle


register(
    ModelBundle(
        name="umxhq",
        config=CONFIGS["umxhq"],
        files=_zenodo(
            3370489,
            {
                "vocals": ("vocals-b62c91ce.pth", "b62c91cedbc7a066"),
                "drums": ("drums-9619578f.pth", "9619578f885c5473"),
                "bass": ("bass-8d85a5bd.pth", "8d85a5bd3f996a88"),
                "other": ("other-b52fbbf7.pth", "b52fbbf76479e752"),
            },
        ),
        licence="MIT (Zenodo record 3370489); trained on MUSDB18-HQ (non-commercial data terms)",
        description="Open-Unmix trained on MUSDB18-HQ, full bandwidth (default)",
    )
)
register(
    ModelBundle(
        name="umx",
        config=CONFIGS["umx"],
        files=_zenodo(
            3370486,
            {
                "vocals": ("vocals-c8df74a5.pth", "c8df74a5"),
                "drums": ("drums-5a48008b.pth", "5a48008b"),
                "bass": ("bass-646024d3.pth", "646024d3"),
                "other": ("other-f8e132cc.pth", "f8e132cc"),
            },
        ),
        licence="MIT (as umxhq, unverified); trained on MUSDB18 (non-commercial data terms)",
        description="Open-Unmix trained on MUSDB18 (16 kHz AAC band limit), for SiSEC 2018 comparisons",
    )
)
register(
    ModelBundle(
        name="umxl",
        config=CONFIGS["umxl"],
        files=_zenodo(
            5069601,
            {
                "vocals": ("vocals-bccbd9aa.pth", "bccbd9aa"),
                "drums": ("drums-69e0ebd4.pth", "69e0ebd4"),
                "bass": ("bass-2ca1ce51.pth", "2ca1ce51"),
                "other": ("other-c8c5b3e6.pth", "c8c5b3e6"),
            },
        ),
        licence="CC BY-NC-SA 4.0 (non-commercial)",
        description="Open-Unmix large (hidden 1024), trained on a larger non-public set",
        notice="umxl weights are licensed CC BY-NC-SA 4.0: non-commercial use only, share alike",
    )
)
register(
    ModelBundle(
        name="umxse",
        config=CONFIGS["umxse"],
        files=_zenodo(
            3786908,
            {
                "speech": ("speech_f5e0d9f9.pth", "f5e0d9f9"),
                "noise": ("noise_04a6fc2d.pth", "04a6fc2d"),
            },
        ),
        licence="unverified (Zenodo record 3786908)",
        description="speech enhancement at 16 kHz (speech, noise), Uhlich & Mitsufuji 2020",
    )
)

# The NNabla releases (Sony, ai-research-code/x-umx). No hashes are published: the first
# download's SHA-256 is recorded in the cache and later copies are checked against it
# (trust on first use, see unmix.download.fetch and docs/nnabla-xumx.md).
NNABLA = "https://nnabla.org/pretrained-models"
NNABLA_LICENCE = "not stated by the publisher (code Apache-2.0); treat as research-only"
NNABLA_NOTICE = (
    "the NNabla weights are published without a licence statement: treat them as "
    "research-only until their licence is confirmed"
)
register(
    ModelBundle(
        name="umxhq-nnabla",
        config=CONFIGS["umxhq"],
        files=(WeightFile("*", f"{NNABLA}/open-unmix-nnabla/umxhq.zip", "", "umxhq.zip"),),
        licence=NNABLA_LICENCE,
        description="NNabla (Sony) release of UMX trained on MUSDB18-HQ (zip of <target>.h5)",
        notice=NNABLA_NOTICE,
        fmt="nnabla-zip",
    )
)
register(
    ModelBundle(
        name="umx-nnabla",
        config=CONFIGS["umx"],
        files=(WeightFile("*", f"{NNABLA}/open-unmix-nnabla/umx.zip", "", "umx.zip"),),
        licence=NNABLA_LICENCE,
        description="NNabla (Sony) release of UMX trained on MUSDB18 (zip of <target>.h5)",
        notice=NNABLA_NOTICE,
        fmt="nnabla-zip",
    )
)
register(
    ModelBundle(
        name="xumx",
        config=CONFIGS["umx"].with_(arch="xumx"),
        files=(WeightFile("*", f"{NNABLA}/ai-research-code/x-umx/x-umx.h5", "", "x-umx.h5"),),
        licence=NNABLA_LICENCE,
        description="CrossNet-UMX (X-UMX, Sawata et al. 2021) trained on MUSDB18, NNabla release",
        notice=NNABLA_NOTICE,
        fmt="nnabla-h5",
        aliases=("x-umx",),
    )
)

#: the licence of every model this project trained on the MUSDB18 previews
PREVIEW_LICENCE = (
    "weights MIT; trained on the MUSDB18 previews (non-commercial research/education terms "
    "of MUSDB18)"
)

# Trained by this project (`unmix train`) on the MUSDB18 7-s previews; shipped in the
# package (src/unmix/zoo/umx-preview, see its MODEL_CARD.md): a small demo model.
register(
    ModelBundle(
        name="umx-preview",
        config=CONFIGS["umx"].with_(hidden_size=128),
        files=(),
        licence=PREVIEW_LICENCE,
        description="small UMX (hidden 128) trained on the 80 MUSDB18 7-s training previews; "
        "a demo, far below umxhq",
        notice="umx-preview is trained on MUSDB18 previews: non-commercial research/education use",
        fmt="safetensors",
        packaged="zoo/umx-preview",
    )
)

# umx-preview with its `other` network fine-tuned (`unmix train --init umx-preview`, speed
# augmentation) on the same previews; same size and speed (src/unmix/zoo/umx-preview2, see
# its MODEL_CARD.md).
register(
    ModelBundle(
        name="umx-preview2",
        config=CONFIGS["umx"].with_(hidden_size=128),
        files=(),
        licence=PREVIEW_LICENCE,
        description="umx-preview with its 'other' network fine-tuned with speed augmentation: "
        "every target at least 1 dB above mixture/4 on the validation previews; a demo",
        notice="umx-preview2 is trained on MUSDB18 previews: non-commercial research/education use",
        fmt="safetensors",
        packaged="zoo/umx-preview2",
    )
)

# The causal twin of umx-preview for real-time use (`unmix stream`, StreamSeparator): a
# unidirectional UMX with a 2048-sample window (latency 46 ms at 44.1 kHz), trained by this
# project on the same previews (src/unmix/zoo/umx-rt-preview, see its MODEL_CARD.md).
register(
    ModelBundle(
        name="umx-rt-preview",
        config=CONFIGS["umx"].with_(
            hidden_size=128, n_fft=2048, n_hop=512, max_bin=744, unidirectional=True
        ),
        files=(),
        licence=PREVIEW_LICENCE,
        description="small causal UMX (unidirectional, n_fft 2048, 46 ms latency) trained on "
        "the 80 MUSDB18 7-s training previews, for unmix stream; a demo",
        notice="umx-rt-preview is trained on MUSDB18 previews: non-commercial research/education use",
        fmt="safetensors",
        packaged="zoo/umx-rt-preview",
    )
)

DEFAULT_MODEL = "umxhq"


def get_bundle(name: str) -> ModelBundle:
    """Look up a registered model by name or alias.

    Raises:
        KeyError: with the list of known names.
    """
    if name in BUNDLES:
        return BUNDLES[name]
    for bundle in BUNDLES.values():
        if name in bundle.aliases:
            return bundle
    raise KeyError(name)


def list_models() -> list[str]:
    """Registered model names."""
    return list(BUNDLES)
