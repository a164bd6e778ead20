"""From options to a run directory and back: options, config.json, checkpoints, the generic
loop, loading and using runs."""
