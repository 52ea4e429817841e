"""Experiment drivers: ablations over runs from one shared starting point."""
