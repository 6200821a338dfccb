"""ktest: a QEMU-backed test orchestrator for Linux NIC drivers."""
__version__ = "0.1.0"
