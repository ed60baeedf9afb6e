"""``torch.sagemaker.state``: what SMP v2 knows about the job after ``tsm.init()``.

The attributes are those AWS's SMP v2 reference lists (rank, world_size, hybrid_shard_degree,
tensor_parallel_degree / tp_size, tp_rank, tp_process_group, rep_rank_process_group), those its other guide pages
and example scripts use (world_process_group, ranker, ep_rank, cp_rank, cp_size, the degrees,
sm_activation_offloading), and SMP's own rule for them: before init they are None, and scripts may assign the
degrees (AWS's example sets them to 1 when it does not use SMP's implementation).
"""

from __future__ import annotations


class Ranker:
    """Replication: ranks with the same (shard, tp) coordinates in different replicas hold the same parameters."""

    def __init__(self, layout):
        self._layout = layout

    def _block(self) -> int:
        return self._layout.shard_degree * self._layout.tp_degree

    def get_rep_rank(self, global_rank: int) -> int:
        """The replica a rank belongs to: 0 for the first ``hybrid_shard_degree x tp`` ranks, and so on."""
        return global_rank // self._block()

    def get_rep_groups(self) -> list[list[int]]:
        """For every (shard, tp) coordinate, the ranks holding it, one per replica."""
        block = self._block()
        return [list(range(offset, self._layout.world_size, block)) for offset in range(block)]


class State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.initialized = False
        self.rank = self.world_size = self.local_rank = None
        self.hybrid_shard_degree = self.tensor_parallel_degree = None
        self.context_parallel_degree = self.expert_parallel_degree = None
        self.tp_rank = self.cp_rank = self.ep_rank = None
        self.tp_process_group = self.rep_rank_process_group = self.world_process_group = None
        self.cp_process_group = self.ep_process_group = None
        self.dp_process_group = None
        """The ranks holding the same tensor-parallel slice (not an SMP attribute: the stand-in's own)."""
        self.sm_activation_offloading = self.activation_loading_horizon = None
        self.ranker = None
        self.cfg = None
        self.device_mesh = None
        """The (replicate, shard, tp) DeviceMesh the stand-in builds: not an SMP attribute, for its own modules."""
        self.layout = None
        self.tp_parameter_names: set[str] = set()
        """Fully qualified names of the parameters tsm.transform split over the TP group (for clip_grad_norm_)."""

    # SMP's short names for the degrees
    @property
    def tp_size(self):
        return self.tensor_parallel_degree

    @tp_size.setter
    def tp_size(self, value):
        self.tensor_parallel_degree = value

    @property
    def cp_size(self):
        return self.context_parallel_degree

    @property
    def ep_size(self):
        return self.expert_parallel_degree

    def get_rng_state_tracker(self, *args, **kwargs):
        raise NotImplementedError("tsm.state.get_rng_state_tracker serves Transformer Engine's checkpointing of SMP's "
                                  "tensor-parallel CUDA modules; smdistributed-stub does not emulate it (GPU only). "
                                  "Checkpoint activations with torch.utils.checkpoint locally.")

    def __repr__(self):
        if not self.initialized:
            return "tsm.state (smdistributed-stub, not initialized: call tsm.init())"
        return (f"tsm.state (smdistributed-stub): rank {self.rank}/{self.world_size}, hybrid_shard_degree "
                f"{self.hybrid_shard_degree}, tp {self.tp_rank}/{self.tp_size}")


state = State()
