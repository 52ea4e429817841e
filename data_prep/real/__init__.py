"""Real photos (user folder or offline bundled set) with one local edit each."""

from data_prep.real.generate import RealOptions, generate_pair

__all__ = ["RealOptions", "generate_pair"]
