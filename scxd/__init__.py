"""scxd: watches the workload and hot-swaps the sched_ext scheduler that serves it best."""

__version__ = "0.1.0"
