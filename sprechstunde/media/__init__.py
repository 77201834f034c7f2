"""aiortc SFU-lite: one peer connection per participant, encoded-media forwarding, keyframes, ICE/TURN."""
