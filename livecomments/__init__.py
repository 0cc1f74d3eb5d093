"""livecomments core: what is neither HTTP handler, bus nor store.

The comment model and its validation, the per-video fan-out (`Channel`), the
per-process `Hub` of channels, the ingest batcher, configuration and the
Tornado application wiring.
"""
