"""vzero_nemo: Vision-Zero self-play ("Who Is the Spy?") on the Megatron/NeMo stack."""

__version__ = "0.1.0"
