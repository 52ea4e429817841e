"""Image-pair data preparation: generators per domain, shard writer, preview and benchmarks."""
