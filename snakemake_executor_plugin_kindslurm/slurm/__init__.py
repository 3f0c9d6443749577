"""Talking to Slurm: pure argv builders and output parsers, plus thin runners."""
