"""The game: pure Python rules, prompts, parsing, rewards and the batched environment.

No torch here (a test checks it). Entry points: `env.GameBatch` (the trainer's interface, its
docstring states the protocol), `rewards.clue_rewards` / `rewards.decision_reward`,
`policies` (scripted oracle / random players), `python -m vzero_nemo.game.simulate` and
`python -m vzero_nemo.game.bench`.
"""
