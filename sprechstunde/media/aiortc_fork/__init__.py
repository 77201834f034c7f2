"""Where Sprechstunde's media server departs from stock aiortc/aioice, one module per object it touches.

aiortc decodes every received track and encodes every sent one; an SFU must do neither, and aiortc's
per-packet plumbing (a coroutine and task switch per packet, STUN parsing of every datagram, datetime
objects per packet) was most of the forwarding CPU. The fork keeps aiortc's objects and handlers and
changes them per instance, on the server's own peer connections only; nothing process-wide is patched,
so any other aiortc peer connection in the process (the tests' clients) runs stock aiortc.

- `receiver`: the RTCRtpReceiver of a published track (tap, prompt jitter buffer, per-packet handler, NACKs)
- `sender`: the RTCRtpSender of a subscriber's stream (pass-through packets, pushed frames, PLI and REMB)
- `estimator`: the receiver's remote bitrate estimator (same results, fewer steps; capped, paced REMB)
- `transport`: RTCDtlsTransport and aioice's Connection/StunProtocol (SRTP on arrival, direct sends,
  the ICE address guard, the announced host addresses)
- `clock`, `coroutines`: aiortc's clock without datetime objects; running a packet handler inline
- `check`: the start-up check that the installed aiortc/aioice are the sources this fork mirrors

Every module lists what of aiortc/aioice it replaces or mirrors in `MIRRORS`; `check.EXPECTED` holds the
source hash of each for the pinned versions.
"""
