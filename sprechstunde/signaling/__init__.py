"""The WebSocket signaling protocol (docs/protocol.md): message schema, connections, room fan-out."""
