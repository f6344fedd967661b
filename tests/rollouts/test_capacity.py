"""The automatic batch-size ladder: environments per worker from measured GPU memory, host memory and episodes."""

from so101_dataengine.rollouts.capacity import ENV_LADDER, HOST_BYTES_PER_ENV, framebuffer_bytes, plan

GIB = 2**30


def measured(per_env_bytes: int, total: int = 80 * GIB, overhead: int = GIB, rungs=ENV_LADDER) -> dict:
    """What ``measure_policy_memory`` returns: a policy whose peak grows linearly with the batch."""
    return {"peak": {b: GIB + b * per_env_bytes for b in rungs}, "total": total, "overhead": overhead}


def test_largest_rung_that_fits_the_gpu_shared_by_its_workers():
    memory = measured(per_env_bytes=100 << 20)  # 100 MiB per env: 64 envs = 7.25 GiB per worker
    capacity = plan(memory, 224, episodes=10_000, workers=8, lanes=1, num_envs=None, workers_per_gpu=8,
                    cores=16, host_bytes=1 << 40)
    per_worker = lambda b: GIB + GIB + b * (100 << 20) + framebuffer_bytes(b, 224)  # noqa: E731
    assert capacity.num_envs == 64
    assert 8 * per_worker(64) <= 0.85 * 80 * GIB < 8 * per_worker(128)
    assert "GPU memory" in capacity.reason


def test_the_ladder_stops_where_the_policy_ran_out_of_memory():
    memory = measured(per_env_bytes=1 << 20, rungs=(8, 16, 32))  # OOM at 64
    capacity = plan(memory, 224, episodes=10_000, workers=1, lanes=1, num_envs=None, workers_per_gpu=1,
                    cores=4, host_bytes=1 << 40)
    assert capacity.num_envs == 32


def test_host_memory_and_episode_count_cap_the_environments():
    memory = measured(per_env_bytes=1 << 20)
    host = plan(memory, 224, episodes=10_000, workers=4, lanes=3, num_envs=None, workers_per_gpu=4, cores=16,
                host_bytes=4 * 64 * HOST_BYTES_PER_ENV * 2)
    assert host.num_envs == 64 and "host memory" in host.reason
    few = plan(memory, 224, episodes=40, workers=4, lanes=3, num_envs=None, workers_per_gpu=4, cores=16,
               host_bytes=1 << 40)
    assert few.num_envs == 10 and "40 episodes over 4 workers" in few.reason


def test_given_sizes_and_cpu_defaults():
    assert plan({}, 224, 100, workers=2, lanes=None, num_envs=5, workers_per_gpu=1, cores=8).num_envs == 5
    cpu = plan({}, 224, 100, workers=1, lanes=None, num_envs=None, workers_per_gpu=1, cores=2, host_bytes=8 * GIB)
    assert (cpu.num_envs, cpu.lanes) == (8, 1)
    assert plan({}, 224, 100, workers=4, lanes=None, num_envs=None, workers_per_gpu=1, cores=16).lanes == 3
