"""Telemetry sources (procfs, BPF, schedstat fallback) and the sampler that reads them."""
