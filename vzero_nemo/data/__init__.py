"""Image-pair data for training: the sample schema and the shard readers.

- `schema`: the pair-sample schema shared with data_prep (pure Python, cheap to import).
- `manifest`: manifest.json of a shard folder (shards, counts, runs, train/val split).
- `reader.PairReader`: plain-tar reader per DP rank: seeded shuffle, exact resume, skips
  corrupt shards. `bench_reader`: its pairs/s on one core.
- `energon_loader.energon_pair_loader`: the same folder through megatron-energon.

Nothing is imported here, so `import vzero_nemo.data.schema` stays free of numpy/PIL/torch.
"""
