"""The Qwen2.5-VL policy: sizes, tokenizer, chat rendering, batching, Megatron model, HF I/O.

Modules (import what you need; `provider` / `qwen25vl` / `hf_convert` pull in Megatron):

- `sizes`      named sizes tiny / 7b / 32b / 72b, or `auto` from a checkpoint's config.json
               (pure Python; consistency and TP / PP checks)
- `tokenizer`  `load_tokenizer(model_cfg) -> VLTokenizer` (tiny BPE or a checkpoint's own)
- `image`      Qwen2.5-VL smart resize + patching
- `chat`       `render_chat(messages, tokenizer, image, model_cfg) -> PromptInputs`
- `batch`      `collate_prompts(...) -> PromptBatch` with M-RoPE positions and masks
- `provider`   `provider_for(model_cfg, parallel_cfg)`, `build_policy(...)`
- `qwen25vl`   `VZeroQwen25VLModel`, the Megatron-Bridge model with explicit positions
- `logprobs`   vocab-parallel token log-probs and entropy
- `hf_convert` Hugging Face <-> Megatron weights through Megatron-Bridge's AutoBridge
- `hf_config`  transformers configs of our dimensions (no Megatron)
- `hf_files`   safetensors checkpoints written / read / compared one tensor at a time
- `random_checkpoint` random Qwen2.5-VL checkpoints at published widths (tests, dry runs)
"""
