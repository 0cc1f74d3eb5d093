"""The fan-out benchmark: livecomments against nchan on the same box (`python -m bench.run`)."""
