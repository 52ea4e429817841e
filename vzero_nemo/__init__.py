"""vzero_nemo: Vision-Zero self-play ("Who Is the Spy?") on the Megatron/NeMo stack."""

__version__ = "0.1.0"


def _quiet_entry_point() -> None:
    """`python -m vzero_nemo.<command>` and the helper processes it spawns: route library
    warnings and logs (vzero_nemo.logs) before the command's own imports load the model
    stack; its flags refine this later."""
    import os
    import sys

    argv = getattr(sys, "orig_argv", [])
    command = "-m" in argv[:-1] and argv[argv.index("-m") + 1].startswith("vzero_nemo")
    if command or os.environ.get("VZERO_LOGS_CONFIGURED"):
        from vzero_nemo import logs

        logs.configure()


_quiet_entry_point()
