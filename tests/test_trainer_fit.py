"""Ray Train specifics on a local cluster: a worker that dies mid-run is restarted by `FailureConfig` and goes on
from the latest checkpoint; ranks with unequal shares still take equal steps."""

import sys
from dataclasses import dataclass
from pathlib import Path

from tests.trainer_shards import write_dataset
from trainer.checkpoint import read_info
from trainer.config import ScheduleConfig, TrainConfig
from trainer.data import ShardPairs, SplitConfig
from trainer.models import BackboneConfig
from trainer.train import fit

TINY = BackboneConfig(name="vit_tiny_patch16_224", image_size=32, overrides={"depth": 1, "embed_dim": 32, "num_heads": 2})


@dataclass(frozen=True)
class CrashOnceAtEpoch:
    """Real pairs, except that the first worker to start epoch `epoch`'s training dies there, once."""

    source: ShardPairs
    epoch: int
    marker: str

    def describe(self) -> dict:
        return self.source.describe()

    def for_workers(self) -> "CrashOnceAtEpoch":
        return self

    def pairs(self, split, rank=0, world=1, epoch=0, shuffle=False):
        if split == "train" and epoch == self.epoch and not Path(self.marker).exists():
            Path(self.marker).touch()
            raise RuntimeError("simulated worker crash")
        return self.source.pairs(split, rank, world, epoch, shuffle)


def test_a_crashed_worker_resumes_from_the_latest_checkpoint(tmp_path, ray_local):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import a test module by name
    write_dataset(str(tmp_path / "data"), identities=6, image_size=32, pain_expressions=2, per_shard=2)
    source = CrashOnceAtEpoch(ShardPairs(str(tmp_path / "data"), SplitConfig(fractions=(0.7, 0.3, 0.0))), epoch=1,
                              marker=str(tmp_path / "crashed"))
    config = TrainConfig(model="vit", backbone=TINY, fusion_heads=2, schedule=ScheduleConfig(epochs=3), batch_size=4, augmentation=None)
    result = fit(source, config, str(tmp_path / "run"), workers=2, max_failures=1)
    assert result.error is None and (tmp_path / "crashed").exists()
    final = read_info(tmp_path / "run" / "checkpoint_epoch0002")
    assert final["started_at_epoch"] == 1  # the restarted workers loaded epoch 0's checkpoint
    assert read_info(tmp_path / "run" / "checkpoint_epoch0000")["started_at_epoch"] == 0
    # Both ranks stopped at the same step although their shares of the split differ in size.
    shares = [len(list(source.source.pairs("train", rank, 2))) for rank in range(2)]
    assert final["metrics"]["steps"] == min(shares) // 4
