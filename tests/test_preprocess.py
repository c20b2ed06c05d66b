"""vlatent_jax.data.preprocess must reproduce transformers' Qwen2.5-VL video preprocessing exactly."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tvF = pytest.importorskip("torchvision.transforms.v2.functional")
from transformers import Qwen2VLVideoProcessor  # noqa: E402
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor  # noqa: E402
from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize as hf_smart_resize  # noqa: E402

from vlatent_jax.data import preprocess as pp  # noqa: E402

RNG = np.random.default_rng(1234)


def frames(t, h, w, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
  # half the frames smooth (gradients), so both noise and natural-ish content are covered
  yy, xx = np.mgrid[:h, :w]
  for i in range(0, t, 2):
    x[i] = ((yy * 3 + xx * 5)[..., None] * (np.arange(3) + 1) + i * 17) % 256
  return x


def hf_processor(**kw):
  return Qwen2VLVideoProcessor(**kw)


def hf_run(vp, videos, **kw):
  out = vp(videos=videos, return_tensors="np", input_data_format="channels_last", cap_pixels_per_frame=False, **kw)
  return np.asarray(out["pixel_values_videos"]), np.asarray(out["video_grid_thw"])


def hf_second_per_grid(vp, videos, metadata=None):
  # Qwen2_5_VLProcessor._process_videos computes second_per_grid_ts; it needs no tokenizer.
  proc = object.__new__(Qwen2_5_VLProcessor)
  proc.video_processor = vp
  out, _ = Qwen2_5_VLProcessor._process_videos(
    proc, videos, return_metadata=True, video_metadata=metadata, cap_pixels_per_frame=False, return_tensors="np"
  )
  return np.asarray(out["second_per_grid_ts"], np.float32)


def test_default_config_matches_hf():
  vp, cfg = hf_processor(), pp.VideoProcessorConfig()
  assert (cfg.min_pixels, cfg.max_pixels) == (vp.size["shortest_edge"], vp.size["longest_edge"])
  assert (cfg.patch_size, cfg.temporal_patch_size, cfg.merge_size) == (
    vp.patch_size,
    vp.temporal_patch_size,
    vp.merge_size,
  )
  assert cfg.image_mean == tuple(vp.image_mean) and cfg.image_std == tuple(vp.image_std)
  assert cfg.rescale_factor == vp.rescale_factor


def test_smart_resize_matches_hf():
  sizes = [(int(h), int(w)) for h, w in RNG.integers(1, 4000, (3000, 2))]
  sizes += [(28, 28), (1, 1), (10, 2000), (2000, 10), (1, 200), (224, 224), (720, 1280), (1080, 1920)]
  budgets = [(128 * 28 * 28, 768 * 28 * 28), (56 * 56, 28 * 28 * 1280), (3136, 12845056), (4 * 28 * 28, 16 * 28 * 28)]
  for factor in (28, 32):
    for mn, mx in budgets:
      for h, w in sizes:
        try:
          expected = hf_smart_resize(h, w, factor, mn, mx)
        except ValueError:
          with pytest.raises(ValueError, match="height="):
            pp.smart_resize(h, w, factor, mn, mx)
          continue
        assert pp.smart_resize(h, w, factor, mn, mx) == expected, (h, w, factor, mn, mx)


@pytest.mark.parametrize(
  "src,dst",
  [
    ((90, 160), (252, 448)),
    ((720, 1280), (532, 952)),
    ((100, 37), (392, 140)),
    ((50, 50), (56, 28)),
    ((300, 300), (300, 56)),
    ((64, 64), (120, 64)),
    ((1000, 90), (84, 28)),
    ((17, 23), (300, 11)),
  ],
)
def test_resize_frames_bit_exact_vs_torchvision(src, dst):
  x = frames(2, *src, seed=src[0])
  ref = tvF.resize(
    torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(),
    list(dst),
    interpolation=tvF.InterpolationMode.BICUBIC,
    antialias=True,
  )
  out = pp.resize_frames(x, *dst)
  assert out.dtype == np.float32 and out.shape == (2, *dst, 3)
  np.testing.assert_array_equal(out, ref.permute(0, 2, 3, 1).numpy().astype(np.float32))


@pytest.mark.parametrize(
  "shape",
  [
    (3, 90, 160),  # upscaled to >= min_pixels, odd T
    (5, 224, 224),  # upscaled, odd T
    (4, 252, 448),  # already at the smart-resized size: no resize
    (2, 720, 1280),  # downscaled under max_pixels
    (1, 20, 30),  # tiny, single frame
    (6, 333, 517),
  ],  # non-multiple of 28, within budget: rounded to the nearest multiple
)
def test_process_video_matches_hf(shape):
  x = frames(*shape, seed=sum(shape))
  pv, grid = hf_run(hf_processor(), x)
  out = pp.process_video(x)
  assert out["pixel_values_videos"].dtype == np.float32 and out["video_grid_thw"].dtype == np.int64
  np.testing.assert_array_equal(out["video_grid_thw"], grid)
  np.testing.assert_array_equal(out["pixel_values_videos"], pv)  # bit-exact
  np.testing.assert_array_equal(out["second_per_grid_ts"], hf_second_per_grid(hf_processor(), [x]))


def test_process_video_with_fps_and_hf_config_dict():
  # values from Qwen2.5-VL's preprocessor_config.json
  d = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
  }
  cfg = pp.VideoProcessorConfig.from_hf_dict(d)
  vp = hf_processor(min_pixels=3136, max_pixels=12845056)
  x = frames(3, 61, 99, seed=7)
  out = pp.process_video(x, fps=2.0, config=cfg)
  pv, grid = hf_run(vp, x)
  np.testing.assert_array_equal(out["video_grid_thw"], grid)
  np.testing.assert_array_equal(out["pixel_values_videos"], pv)
  meta = [{"total_num_frames": 3, "fps": 2.0}]
  np.testing.assert_array_equal(out["second_per_grid_ts"], hf_second_per_grid(vp, [x], meta))
  assert out["second_per_grid_ts"].tolist() == [1.0]


def test_process_videos_list_matches_hf():
  vids = [frames(3, 90, 160, seed=1), frames(4, 130, 70, seed=2)]
  out = pp.process_videos(vids, fps=[2.0, 4.0])
  pv, grid = hf_run(hf_processor(), vids)
  np.testing.assert_array_equal(out["video_grid_thw"], grid)
  np.testing.assert_array_equal(out["pixel_values_videos"], pv)
  meta = [{"total_num_frames": 3, "fps": 2.0}, {"total_num_frames": 4, "fps": 4.0}]
  np.testing.assert_array_equal(out["second_per_grid_ts"], hf_second_per_grid(hf_processor(), vids, meta))
  assert out["second_per_grid_ts"].dtype == np.float32 and out["second_per_grid_ts"].shape == (2,)


def test_uint8_round_trip():
  cfg = pp.VideoProcessorConfig()
  for shape in [(3, 90, 160), (4, 252, 448), (2, 720, 1280)]:
    x = frames(*shape, seed=3)
    patches, grid = pp.patchify_uint8(x, cfg)
    assert patches.dtype == np.uint8 and grid.dtype == np.int64 and grid.shape == (3,)
    assert patches.shape == (int(np.prod(grid)), cfg.patch_dim)
    ref = pp.process_video(x, config=cfg)
    np.testing.assert_array_equal(pp.normalize_patches(patches, cfg), ref["pixel_values_videos"])
    np.testing.assert_array_equal(grid[None], ref["video_grid_thw"])


def test_patchify_pads_by_repeating_last_frame():
  cfg = pp.VideoProcessorConfig()
  x = np.arange(3 * 3 * 56 * 84, dtype=np.float32).reshape(3, 3, 56, 84)
  p3, grid3 = pp.patchify(x, cfg)
  p4, grid4 = pp.patchify(np.concatenate([x, x[-1:]]), cfg)
  assert grid3 == grid4 == (2, 4, 6)
  np.testing.assert_array_equal(p3, p4)
  # first patch: channel-major, then time, then the 14x14 pixels of the top-left patch
  np.testing.assert_array_equal(p3[0].reshape(3, 2, 14, 14), x[:2, :, :14, :14].transpose(1, 0, 2, 3))
  # second patch is the right neighbour inside the first 2x2 merge block
  np.testing.assert_array_equal(p3[1].reshape(3, 2, 14, 14), x[:2, :, :14, 14:28].transpose(1, 0, 2, 3))


@pytest.mark.parametrize(
  "bad,match",
  [
    (np.zeros((90, 160, 3), np.uint8), r"shape \(90, 160, 3\)"),
    (np.zeros((2, 90, 160, 4), np.uint8), r"shape \(2, 90, 160, 4\)"),
    (np.zeros((0, 90, 160, 3), np.uint8), r"shape \(0, 90, 160, 3\)"),
    (np.zeros((2, 90, 160, 3), np.float32), "dtype float32"),
    (np.zeros((2, 1, 300, 3), np.uint8), "aspect ratio"),
  ],
)
def test_bad_input_raises(bad, match):
  with pytest.raises(ValueError, match=match) as exc:
    pp.process_video(bad)
  assert "frames" in str(exc.value) or "height=" in str(exc.value)


def test_other_bad_inputs():
  with pytest.raises(ValueError, match=r"videos\[1\]"):
    pp.process_videos([frames(2, 56, 56), np.zeros((2, 56, 56), np.uint8)])
  with pytest.raises(ValueError, match="fps"):
    pp.process_videos([frames(2, 56, 56)], fps=[1.0, 2.0])
  with pytest.raises(ValueError, match="fps"):
    pp.process_video(frames(2, 56, 56), fps=0.0)
  with pytest.raises(ValueError, match="patches_uint8.*float32"):
    pp.normalize_patches(np.zeros((4, 1176), np.float32))
  with pytest.raises(ValueError, match="frames_chw_float"):
    pp.patchify(np.zeros((2, 3, 50, 56), np.float32))


def test_from_pretrained_dir(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    pp.VideoProcessorConfig.from_pretrained_dir(tmp_path)
  (tmp_path / "preprocessor_config.json").write_text(json.dumps({"min_pixels": 3136, "max_pixels": 12845056}))
  assert pp.VideoProcessorConfig.from_pretrained_dir(tmp_path).max_pixels == 12845056
  (tmp_path / "video_preprocessor_config.json").write_text(
    json.dumps({"size": {"shortest_edge": 1000, "longest_edge": 2000}, "temporal_patch_size": 2})
  )
  cfg = pp.VideoProcessorConfig.from_pretrained_dir(str(tmp_path))
  assert (cfg.min_pixels, cfg.max_pixels) == (1000, 2000)


def test_module_imports_neither_torch_nor_transformers():
  code = (
    "import sys; import vlatent_jax.data.preprocess; "
    "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)"
  )
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
