"""The one table of output formats: adding a format is one :class:`OutputFormat` entry.

An entry says how the format is named on the command line (``--format``), which file ending
it gets, which ``--bits`` it takes, which sample rates its codec accepts, whether it holds
every stem in one file, and which :mod:`~unmix.audio.sinks` function opens a file of it.
Everything else (the CLI choices, the output paths, the writer, the checks) reads it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AudioError
from .sinks import SinkOpener, flac_sink, mp3_sink, stems_sink, wav_sink

#: the sample rates MPEG audio (MP3) and AAC define (Hz)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200,
             96000)  # fmt: skip


@dataclass(frozen=True)
class OutputFormat:
    """One output format.

    Attributes:
        name: the ``--format`` value.
        suffix: file ending (``.wav``; ``.stem.mp4``).
        codec: how messages name the encoding (``AAC``).
        opener: opens a :class:`~unmix.audio.sinks.Sink` for a file of this format.
        bits: ``--bits`` choice → sample format passed to ``opener``, the first one the
            default; empty when the codec has no choice (then ``subtype`` is passed).
        subtype: sample format for formats without ``bits``.
        rates: sample rates the codec accepts (``None``: any in the global bounds).
        nearest_rate: write other rates at the nearest one of ``rates`` (resampled, with a
            note) instead of refusing them.
        unclipped: sample formats that keep values beyond full scale (float); every
            other one is clipped at full scale, with a warning.
        one_file: one file per input holding the mixture and then every stem as streams
            (NI stems); otherwise one file per stem in a folder named after the input.
        help: one phrase for ``--help``.
    """

    name: str
    suffix: str
    codec: str
    opener: SinkOpener
    bits: Mapping[str, str] = field(default_factory=dict)
    subtype: str = ""
    rates: tuple[int, ...] | None = None
    nearest_rate: bool = False
    unclipped: tuple[str, ...] = ("FLOAT",)
    one_file: bool = False
    help: str = ""

    def sample_format(self, bits: str | None) -> str:
        """The sample format for ``--bits`` (``None``: the default); checks the combination."""
        if not self.bits:
            if bits is not None:
                takes = " and ".join(f.name for f in FORMATS.values() if f.bits)
                raise AudioError(f"--bits applies to {takes} only, not to {self.label}")
            return self.subtype
        chosen = bits or next(iter(self.bits))
        if chosen not in self.bits:
            raise AudioError(
                f"--bits {chosen} is not possible for {self.name}; use one of {tuple(self.bits)}"
            )
        return self.bits[chosen]

    def clips(self, sample_format: str) -> bool:
        """Whether ``sample_format`` (from :meth:`sample_format`) clips at full scale."""
        return sample_format not in self.unclipped

    @property
    def label(self) -> str:
        """``stems (AAC)`` or ``mp3``: how error messages name the format."""
        return self.name if self.codec.lower() == self.name else f"{self.name} ({self.codec})"

    def output_rate(self, rate: int) -> int:
        """The rate a file of this format gets for stems at ``rate`` (Hz); checks it."""
        self.check_rate(rate)
        if self.rates is None or rate in self.rates:
            return rate
        return min(self.rates, key=lambda r: (abs(r - rate), -r))

    def check_rate(self, rate: int) -> None:
        """One-line error if the codec cannot store ``rate`` (before anything is separated)."""
        if self.rates is not None and rate not in self.rates and not self.nearest_rate:
            raise AudioError(
                f"cannot write {self.name} at {rate} Hz: {self.codec} stores at most "
                f"{max(self.rates)} Hz and only the rates {', '.join(map(str, self.rates))}; "
                "use --format wav or flac, which keep any rate"
            )

    @property
    def default_filename(self) -> str:
        """The default ``--filename`` template (see :mod:`unmix.engine.naming`)."""
        return "{model}/{track}.{ext}" if self.one_file else "{model}/{track}/{stem}.{ext}"

    @property
    def ext(self) -> str:
        """The ``{ext}`` of file name templates: the ending without its first dot."""
        return self.suffix[1:]

    def output_path(self, out_dir: Path, name: str) -> Path:
        """Where the stems of an input called ``name`` go: a folder, or the one file."""
        return out_dir / f"{name}{self.suffix}" if self.one_file else out_dir / name

    def files(self, destination: Path, names: tuple[str, ...]) -> dict[Path, tuple[str, ...]]:
        """Output file → streams it holds (the mixture first in a one-file format)."""
        if self.one_file:
            return {destination: ("mixture", *names)}
        return {destination / f"{n}{self.suffix}": (n,) for n in names}


#: every output format, in ``--format`` order (the first is the default)
FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat(
            "wav", ".wav", "WAV", wav_sink,
            bits={"float": "FLOAT", "16": "PCM_16", "24": "PCM_24"},
            help="wav (default)",
        ),
        OutputFormat(
            "flac", ".flac", "FLAC", flac_sink, bits={"24": "PCM_24", "16": "PCM_16"},
            help="flac",
        ),
        OutputFormat(
            "mp3", ".mp3", "MP3", mp3_sink, subtype="MPEG_LAYER_III", rates=MP3_RATES,
            nearest_rate=True, help="mp3 (LAME, --mp3-bitrate, default 320 kbit/s)",
        ),
        OutputFormat(
            "stems", ".stem.mp4", "AAC", stems_sink, subtype="AAC", rates=AAC_RATES, one_file=True,
            help="stems: one .stem.mp4 per input",
        ),
    )
}  # fmt: skip

#: ``--format`` choices
OUTPUT_FORMATS = tuple(FORMATS)
#: ``--bits`` choices per format (first one is the default)
BIT_DEPTHS = {f.name: tuple(f.bits) for f in FORMATS.values() if f.bits}


def get_format(name: str) -> OutputFormat:
    """The entry for ``name``; a one-line error naming the known ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise AudioError(f"unknown output format {name!r}; use one of {OUTPUT_FORMATS}") from None


def format_of_path(path: Path) -> OutputFormat:
    """The one-stream format whose ending ``path`` has (for writing single files)."""
    for fmt in FORMATS.values():
        if not fmt.one_file and path.name.lower().endswith(fmt.suffix):
            return fmt
    known = sorted(f.suffix for f in FORMATS.values() if not f.one_file)
    raise AudioError(f"{path}: cannot write '{path.suffix}' files; use one of {known}")


def output_suffix(fmt: str) -> str:
    """File ending for ``fmt`` (``.stem.mp4`` for ``stems``)."""
    return get_format(fmt).suffix


def output_subtype(fmt: str, bits: str | None) -> str:
    """The sample format for ``fmt`` at ``bits``; checks the combination."""
    return get_format(fmt).sample_format(bits)
