"""The sched_ext test bed: build a sched_ext kernel + schedulers and run scxd under qemu."""
