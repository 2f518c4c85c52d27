"""Audio in and out: decode (PyAV), resample (soxr), encode (soundfile, PyAV).

* :mod:`~unmix.audio.decode` — probe and decode any file FFmpeg reads, as a stream.
* :mod:`~unmix.audio.resample` — whole-signal and streaming resampling; rate bounds.
* :mod:`~unmix.audio.formats` — the one table of output formats (add a format here).
* :mod:`~unmix.audio.sinks` — the encoders behind the one :class:`~unmix.audio.sinks.Sink`
  protocol.
* :mod:`~unmix.audio.encode` — :class:`StemWriter` (every format, atomic) and :func:`write`.
* :mod:`~unmix.audio.spool` — stdin, pipes and FIFOs copied once to a temporary file.

Audio arrays are ``float32`` shaped ``(nb_channels, nb_timesteps)``.
"""

from .decode import (
    AUDIO_SUFFIXES,
    STEM_NAMES,
    AudioInfo,
    info,
    is_audio_name,
    iter_blocks,
    read,
    read_stems,
)
from .encode import StemWriter, write
from .formats import (
    BIT_DEPTHS,
    FORMATS,
    OUTPUT_FORMATS,
    OutputFormat,
    get_format,
    output_subtype,
    output_suffix,
)
from .resample import MAX_RATE, MIN_RATE, StreamResampler, check_rate, resample, resampled_length
from .sinks import STEMS_BIT_RATE, Sink

__all__ = [
    "AUDIO_SUFFIXES",
    "BIT_DEPTHS",
    "FORMATS",
    "MAX_RATE",
    "MIN_RATE",
    "OUTPUT_FORMATS",
    "STEMS_BIT_RATE",
    "STEM_NAMES",
    "AudioInfo",
    "OutputFormat",
    "Sink",
    "StemWriter",
    "StreamResampler",
    "check_rate",
    "get_format",
    "info",
    "is_audio_name",
    "iter_blocks",
    "output_subtype",
    "output_suffix",
    "read",
    "read_stems",
    "resample",
    "resampled_length",
    "write",
]
