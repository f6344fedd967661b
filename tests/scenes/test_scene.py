import mujoco
import numpy as np
import pytest

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.scenes.outcome import Outcome
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv
from so101_dataengine.scenes.randomization import SceneRandomization
from so101_dataengine.scenes.render import get_preset
from so101_dataengine.scenes.so101 import sim_to_lerobot


@pytest.fixture(scope="module")
def env():
    e = PickPlaceEnv(PickPlaceConfig(image_size=64))
    yield e
    e.close()


def test_kinematics_match_menagerie_so101_at_zero_pose(env):
    """gripperframe at q = 0 sits where Menagerie's SO-101 puts it (docs/so101-model.md)."""
    data = mujoco.MjData(env.model)
    mujoco.mj_forward(env.model, data)
    np.testing.assert_allclose(data.site("gripperframe").xpos, [0.391, -0.001, 0.246], atol=1.5e-3)
    np.testing.assert_allclose(env.model.jnt_range[:6, 1], [1.91986, 1.7453293, 1.69, 1.658063, 2.7438473, 1.7453292])


def test_two_named_cameras_at_configured_size(env):
    obs = env.reset(0)
    assert set(obs.images) == {"observation.images.overhead", "observation.images.wrist"}
    for image in obs.images.values():
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 5
    assert obs.state.shape == (6,) and obs.state.dtype == np.float32


def test_same_seed_same_episode_different_seed_different_scene(env):
    first = env.reset(7)
    scene = env.scene
    actions = [np.array([5.0, 10, -10, 20, 0, 50], dtype=np.float32)] * 5
    for a in actions:
        first = env.step(a)
    again = env.reset(7)
    assert env.scene.to_dict() == scene.to_dict()
    for a in actions:
        again = env.step(a)
    np.testing.assert_array_equal(first.state, again.state)
    for key in first.images:
        np.testing.assert_array_equal(first.images[key], again.images[key])
    env.reset(8)
    assert env.scene.cube_xy != scene.cube_xy


def test_visual_randomization_changes_looks_not_geometry():
    plain = PickPlaceEnv(PickPlaceConfig(image_size=64))
    varied = PickPlaceEnv(PickPlaceConfig(image_size=64, randomization=SceneRandomization(visual=True)))
    a, b = plain.reset(3), varied.reset(3)
    assert plain.scene.cube_xy == varied.scene.cube_xy and plain.scene.bowl_xy == varied.scene.bowl_xy
    assert np.abs(a.images["observation.images.overhead"].astype(int) - b.images["observation.images.overhead"]).mean() > 1
    plain.close()
    varied.close()


def test_physics_stays_finite_under_random_actions_in_range():
    env = PickPlaceEnv(PickPlaceConfig(render=False, max_episode_steps=10_000))
    lo, hi = env.model.actuator_ctrlrange.T
    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed)
        for _ in range(150):
            env.step(sim_to_lerobot(rng.uniform(lo, hi)))
            assert np.all(np.isfinite(env.data.qpos)) and np.all(np.isfinite(env.data.qvel))
        assert env.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0
        assert env.data.warning[mujoco.mjtWarning.mjWARN_BADQPOS].number == 0
        assert env.ground_truth().cube_pos[2] > -0.01, "cube fell through the table"


def test_nan_action_is_refused_with_a_clear_error(env):
    env.reset(0)
    with pytest.raises(DataEngineError, match="NaN"):
        env.step(np.array([0, 0, np.nan, 0, 0, 0]))
    with pytest.raises(DataEngineError, match="shape"):
        env.step(np.zeros(5))


def test_idle_policy_times_out_as_never_picked_up():
    env = PickPlaceEnv(PickPlaceConfig(render=False, max_episode_steps=30))
    obs = env.reset(0)
    hold = obs.state.copy()
    while not env.done:
        env.step(hold)
    metrics = env.metrics()
    assert metrics.outcome is Outcome.NEVER_PICKED_UP
    assert metrics.steps == 30 and not metrics.picked and metrics.final_distance_to_bowl > 0.1


def test_fast_preset_casts_no_shadows_and_unknown_preset_is_refused():
    env = PickPlaceEnv(PickPlaceConfig(render=False))
    assert not env.model.light_castshadow.any()
    assert env.model.vis.quality.shadowsize == 0
    with pytest.raises(DataEngineError, match="unknown render preset 'ugly'"):
        get_preset("ugly")


def test_tiled_renderer_matches_the_reference_renderer():
    """The fast path (all views as tiles of one framebuffer, one readback) gives the reference images:
    max |difference| <= 2 of 255 and mean < 0.01 per image, also with per-env visual randomisation (camera and
    light jitter included) when, as in the engine, the environments share one model and were stepped one after
    the other (each step leaves the model holding another environment's look)."""
    import dataclasses

    from so101_dataengine.scenes.pick_place import build_model
    from so101_dataengine.scenes.render import CAMERA_NAMES, TiledRenderer, image_feature_key

    config = PickPlaceConfig(image_size=48, randomization=SceneRandomization(visual=True))
    references = [PickPlaceEnv(config) for _ in range(3)]  # each with its own model and renderer
    model = build_model(config, tiles=len(references) * len(CAMERA_NAMES))
    envs = [PickPlaceEnv(dataclasses.replace(config, render=False), model) for _ in references]
    action = np.array([0.0, -20.0, 20.0, 10.0, 0.0, 50.0], dtype=np.float32)
    for seed, (env, reference) in enumerate(zip(envs, references)):
        env.reset(seed), reference.reset(seed)
    for env in envs:  # all stepped after all resets: the shared model now holds the last env's look
        env.step(action)
    expected = [reference.step(action).images for reference in references]
    tiled = TiledRenderer(model, 48, len(envs) * len(CAMERA_NAMES))
    views = [(env.data, camera) for env in envs for camera in CAMERA_NAMES]

    def look_of(i):
        if i % len(CAMERA_NAMES) == 0:
            envs[i // len(CAMERA_NAMES)].apply_visuals()

    images = tiled.render(views, before_each=look_of)
    for i, image in enumerate(images):
        difference = np.abs(expected[i // 2][image_feature_key(CAMERA_NAMES[i % 2])].astype(int) - image)
        assert difference.max() <= 2 and difference.mean() < 0.01, (i, difference.max(), difference.mean())
    # fewer views than the grid holds (a partly filled last row): the same pixels for the same views
    np.testing.assert_array_equal(tiled.render(views[:4], before_each=look_of), images[:4])
    tiled.close()
