"""Data readers, windows, splits and regions (canonical form: see docs/ARCHITECTURE.md)."""
