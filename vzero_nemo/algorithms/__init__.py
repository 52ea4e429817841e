"""The learning signal as pure tensor functions: advantages (group z-score, RAE), the clipped
policy loss with KL and exact global-token aggregation, and the Iterative-SPO controller.

Nothing here touches torch.distributed, Megatron or NeMo: the trainer reduces across ranks and
passes plain tensors and numbers in.
"""
