"""The dataset contract: sample members and their encoders, shards, the manifest, storage and reading back."""
