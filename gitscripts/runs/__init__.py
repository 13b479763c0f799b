"""Runs: every execution of a script, recorded (see `service.py`)."""
