"""Socket.IO transport of the live room; the wire vocabulary lives in protocol.py."""
