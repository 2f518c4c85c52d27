"""Real-time separation: causal streaming, lookahead mode, pacing (docs/realtime.md).

* :mod:`~unmix.realtime.stream`: :class:`StreamSeparator`, the public block-by-block API;
* :mod:`~unmix.realtime.causal`: the causal engine (frame buffer, LSTM state, overlap-add);
* :mod:`~unmix.realtime.wiener`: the causal Wiener filter (running spatial covariances);
* :mod:`~unmix.realtime.lookahead`: lookahead mode for bidirectional models;
* :mod:`~unmix.realtime.lookahead_carried`: its default engine for bidirectional UMX
  (:mod:`~unmix.realtime.carried` forward LSTM states, :mod:`~unmix.realtime.grid_wiener`);
* :mod:`~unmix.realtime.pacing`: real-time pacing, overrun counting and the timing report.
"""

from .stream import DEFAULT_STREAM_MODEL, StreamSeparator
from .wiener import CausalWiener

__all__ = ["DEFAULT_STREAM_MODEL", "CausalWiener", "StreamSeparator"]
