"""End to end: a tiny random latent model on the embedded benchmark through `python -m vlatent_jax.eval` and
`python -m vlatent_jax.predict`; the harness's batching, skipping and bookkeeping with a stand-in model."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from vlatent_jax.data import synthetic
from vlatent_jax.data.video import write_mp4
from vlatent_jax.eval import harness, readers, score
from vlatent_jax.eval.readers import Question

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
META = {"video_processor": {"min_pixels": 28 * 28, "max_pixels": 56 * 56},
        "train": {"mode": "videolatent", "num_latents": 2}, "frames": {"fps": 8, "max_frames": 8}}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
  """The embedded benchmark's test split (6 questions, one per task), plus a corrupt video and a malformed row."""
  root = tmp_path_factory.mktemp("bench")
  synthetic.generate(str(root), seed=0, counts={"test": 6}, workers=1, vocab_size=400)
  with open(root / "videos" / "corrupt.mp4", "wb") as f:
    f.write(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)  # an mp4 header, then garbage
  with open(root / "test.jsonl") as f:
    rows = f.read().splitlines()
  corrupt = {**json.loads(rows[0]), "id": "corrupt", "video": "videos/corrupt.mp4"}
  with open(root / "eval.jsonl", "w") as f:
    f.write("\n".join(rows[:3] + [json.dumps(corrupt), '{"id": "cut short"'] + rows[3:]) + "\n")
  return root


@pytest.fixture(scope="module")
def ckpt(bench, tmp_path_factory):
  """A tiny random latent-enabled checkpoint with the benchmark's tokenizer, as training would export it.

  Parameters are drawn in numpy from the model's abstract state: eager nnx init costs seconds on CPU.
  """
  import jax
  from flax import nnx

  from vlatent_jax.checkpoint import save_checkpoint
  from vlatent_jax.models import config as mc
  from vlatent_jax.models.vlm import VideoLM

  tok_dir = str(bench / "tokenizer")
  with open(os.path.join(tok_dir, "tokenizer.json")) as f:
    tok = json.load(f)
  ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
  config = mc.ModelConfig(
      vision=mc.VisionConfig(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=32,
                          fullatt_block_indexes=(1,), window_size=56),
      llm=mc.LLMConfig(vocab_size=max(tok["model"]["vocab"].values()) + 1, hidden_size=32, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, mrope_section=(2, 3, 3)),
      latent=mc.LatentModuleConfig(num_heads=4), latent_start_token_id=ids["<|latent_start|>"],
      latent_end_token_id=ids["<|latent_end|>"], image_token_id=ids["<|image_pad|>"],
      video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
      vision_end_token_id=ids["<|vision_end|>"], bos_token_id=None, eos_token_id=ids["<|im_end|>"],
      pad_token_id=ids["<|endoftext|>"])
  abstract = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: VideoLM(config, rngs=nnx.Rngs(0))), nnx.Param))
  rng = np.random.default_rng(0)

  def draw(keypath, leaf):
    name = jax.tree_util.keystr(keypath)
    if name.endswith("['weight']"):  # RMSNorm scales
      return np.ones(leaf.shape, leaf.dtype)
    return (0.5 if name.endswith("['gate']") else 0.1) * rng.standard_normal(leaf.shape).astype(leaf.dtype)

  path = tmp_path_factory.mktemp("model") / "ckpt"
  save_checkpoint(path, config, jax.tree_util.tree_map_with_path(draw, abstract), META, tokenizer_dir=tok_dir)
  return str(path)


def _run(module, *args):
  return subprocess.run([sys.executable, "-m", module, *map(str, args)], check=False, cwd=ROOT, env=ENV,
                        capture_output=True, text=True, timeout=300)


def test_eval_cli_embedded(bench, ckpt, tmp_path):
  out = tmp_path / "results"
  proc = _run("vlatent_jax.eval", "--ckpt", ckpt, "--bench", "embedded", "--data", bench / "eval.jsonl",
              "--batch-size", 4, "--out", out, "--max-new-tokens", 4)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "skipped row 5" in proc.stderr and "[eval] 7/7 questions, 1 skipped" in proc.stderr  # plain progress lines
  results = json.loads((out / "embedded_videolatent.json").read_text())
  markdown = (out / "embedded_videolatent.md").read_text()
  assert markdown.strip() in proc.stdout and "| **overall** | **6** |" in markdown

  # defaults from the checkpoint's meta (training's mode, latent steps, sampling), not the benchmark's 16 frames
  assert results["settings"]["mode"] == "videolatent" and results["settings"]["num_latents"] == 2
  assert results["settings"]["frames"] == {"fps": 8, "max_frames": 8}
  # the corrupt video is skipped and counted; the malformed row is reported with its line
  assert results["skipped"] == 1 and results["skipped_videos"][0]["id"] == "corrupt"
  assert results["skipped_videos"][0]["video"].endswith("corrupt.mp4")
  assert [row["line"] for row in results["bad_rows"]] == [5]
  # summary numbers agree with the per-question records
  records = results["records"]
  assert results["n"] == len(records) == 6 and len({r["category"] for r in records}) == 6
  assert 0.0 <= results["accuracy"] <= 1.0
  assert results["accuracy"] == pytest.approx(np.mean([r["score"] for r in records]))
  for category, group in results["per_type"].items():
    scores = [r["score"] for r in records if r["category"] == category]
    assert group == {"n": len(scores), "accuracy": pytest.approx(np.mean(scores))}
    assert category in markdown
  assert all(r["latent_steps"] == 2 for r in records) and results["mean_latent_steps"] == 2
  assert results["seconds_per_answer"] * 6 == pytest.approx(sum(r["seconds"] for r in records))
  assert results["generate_seconds"] == pytest.approx(sum(r["seconds"] for r in records))
  assert results["total_seconds"] >= results["generate_seconds"] + results["warmup_seconds"] > 0
  assert results["questions_per_second"] == pytest.approx(6 / results["total_seconds"])
  assert results["official"] is None and results["settings"]["stop_early"] is False

  # the predictions file: {"id", "output"} per answered question; scoring it without the model gives the same
  lines = [json.loads(l) for l in (out / "embedded_videolatent.predictions.jsonl").read_text().splitlines()]
  assert lines == [{"id": r["id"], "output": r["output"]} for r in records]
  again = score.score("embedded", str(bench / "eval.jsonl"), str(out / "embedded_videolatent.predictions.jsonl"))
  assert [r["score"] for r in again["records"]] == [r["score"] for r in records]
  assert again["accuracy"] == pytest.approx(results["accuracy"]) and again["unanswered"] == 1  # the corrupt video


def test_predict_cli(bench, ckpt):
  proc = _run("vlatent_jax.predict", "--ckpt", ckpt, "--video", bench / "videos" / "test_00000.mp4",
              "--question", "Which colour appeared first?", "--options", "red,blue,green,white", "--max-new-tokens", 4)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
  assert lines["latent steps"].startswith("2 (mode videolatent)")
  assert float(lines["time to answer"].split()[0]) > 0
  assert "answer" in lines


def test_predict_missing_video_fails_cleanly(bench, ckpt):
  proc = _run("vlatent_jax.predict", "--ckpt", ckpt, "--video", bench / "videos" / "nope.mp4", "--question", "Q?")
  assert proc.returncode == 2
  assert "nope.mp4" in proc.stderr and "not found" in proc.stderr and "Traceback" not in proc.stderr


class _Processor:
  """Stands in for VideoTextProcessor: 'tokens' are question indices, decoded to the canned answers."""

  def __init__(self, answers):
    self.answers = answers
    self.tokenizer = types.SimpleNamespace(apply_chat_template=lambda messages, **_: messages[0]["content"][1]["text"])

  def __call__(self, texts, videos, fps):
    assert len(texts) == len(videos) == len(fps) and all(v.dtype == np.uint8 for v in videos)
    return {"input_ids": np.array([[self.answers["index"][t]] for t in texts])}

  def decode(self, tokens):
    return [self.answers["text"][int(i)] for i in tokens[:, 0]]


class _Model:
  def __init__(self, latent=None, meta=None):
    self.config, self.meta, self.calls, self.options = types.SimpleNamespace(latent=latent), meta or {}, [], []

  def generate(self, input_ids, *, return_info, **options):
    self.calls.append((input_ids.shape[0], options["mode"]))
    self.options.append(options)
    return input_ids, {"latent_steps": np.zeros(len(input_ids), np.int32)}


def test_harness_pads_batches_skips_videos_and_scores(bench):
  from vlatent_jax.data.prompts import user_text

  questions, _ = readers.read("embedded", str(bench / "eval.jsonl"))
  assert len(questions) == 7  # six tasks + the corrupt video
  # canned answers: right for multiple choice, wrong for numbers
  texts = [("<answer>" + q.answer + "</answer>") if q.options else "-1" for q in questions]
  index = {user_text(q.question, q.question_type, q.options): i for i, q in enumerate(questions)}
  model = _Model()
  out = harness.evaluate(model, _Processor({"index": index, "text": texts}), questions, batch_size=4,
                         frames={"fps": 8, "max_frames": 16}, progress=False, decode_workers=0)
  # 6 decodable videos -> batches of 4 and 2, the second padded to 4; the first batch runs twice (warm-up)
  assert model.calls == [(4, "sft")] * 3
  assert [r["id"] for r in out["records"]] == [q.id for q in questions if q.id != "corrupt"]
  assert out["skipped"] == 1 and out["skipped_videos"][0]["kind"] in ("corrupt", "truncated")
  mc = [q for q in questions if q.options and q.id != "corrupt"]
  assert out["accuracy"] == pytest.approx(len(mc) / 6)
  assert out["by_question_type"] == {"multiple choice": {"n": len(mc), "accuracy": 1.0},
                                     "numerical": {"n": 6 - len(mc), "accuracy": 0.0}}
  assert out["settings"]["frames"] == {"fps": 8, "max_frames": 16} and out["settings"]["mode"] == "sft"
  assert harness.evaluate(model, _Processor({"index": index, "text": texts}), questions, limit=2, batch_size=2,
                          progress=False)["n"] == 2


def test_eval_cli_bad_input(ckpt, tmp_path):
  proc = _run("vlatent_jax.eval", "--ckpt", ckpt, "--bench", "mvbench", "--data", tmp_path / "missing")
  assert proc.returncode == 2 and "missing" in proc.stderr and "Traceback" not in proc.stderr


def test_resolve_settings_precedence():
  model = _Model()
  assert harness.resolve_settings(model) == {"mode": "sft", "num_latents": 8, "frames": {"fps": 2.0, "max_frames": 16}}
  bench_frames = {"fps": 8, "max_frames": 16}
  assert harness.resolve_settings(model, default_frames=bench_frames)["frames"] == bench_frames
  model.meta = {"train": {"mode": "cot", "num_latents": 4}, "frames": {"max_frames": 8}}
  assert harness.resolve_settings(model, default_frames=bench_frames) == {
      "mode": "cot", "num_latents": 4, "frames": {"fps": 8, "max_frames": 8}}
  assert harness.resolve_settings(model, "sft", 3, {"fps": 1.0, "max_frames": None}, bench_frames) == {
      "mode": "sft", "num_latents": 3, "frames": {"fps": 1.0, "max_frames": 8}}
  with pytest.raises(ValueError, match="latent injection module"):
    harness.resolve_settings(model, "videolatent")


def test_harness_windows_batching_by_size_and_stop_early(tmp_path):
  """Time windows reach the decoder; batches group videos of one size; records come back in question order;
  stop_early reaches generate (argument, else the checkpoint's meta["train"]["stop_early"])."""
  from vlatent_jax.data.prompts import user_text

  small, large = str(tmp_path / "small.mp4"), str(tmp_path / "large.mp4")
  write_mp4(np.zeros((20, 32, 32, 3), np.uint8), small, fps=10)   # 2 s
  write_mp4(np.zeros((20, 64, 64, 3), np.uint8), large, fps=10)
  questions = [Question(f"q{i}", large if i % 2 else small, f"Question {i}?", ["a", "b"], "A", "multiple choice",
                        "task", i + 1, window=(0.5, 1.4) if i == 0 else None) for i in range(6)]
  index = {user_text(q.question, q.question_type, q.options): i for i, q in enumerate(questions)}
  seen = []

  class Processor(_Processor):
    def __call__(self, texts, videos, fps):
      seen.append([(v.shape[0], v.shape[1]) for v in videos])
      return super().__call__(texts, videos, fps)

  model = _Model(latent=object(), meta={"train": {"stop_early": True}})
  processor = Processor({"index": index, "text": ["A"] * 6})
  out = harness.evaluate(model, processor, questions, mode="videolatent", batch_size=3, progress=False,
                         frames={"fps": 2, "max_frames": 16})
  # 2 frames per second: the 2 s clips give 4 frames; q0's window 0.5 .. 1.4 s (frames 5 .. 14, 1 s) gives 2.
  # Sorted by size: the three 32-px videos in one batch, the three 64-px ones in the other (the warm-up call
  # reuses the first batch's inputs).
  assert sorted(seen) == [[(2, 32), (4, 32), (4, 32)], [(4, 64)] * 3]
  assert [r["id"] for r in out["records"]] == [f"q{i}" for i in range(6)] and out["accuracy"] == 1.0
  assert all(o["stop_early"] is True for o in model.options) and out["settings"]["stop_early"] is True
  harness.evaluate(model, processor, questions[:1], mode="videolatent", stop_early=False, progress=False)
  assert model.options[-1]["stop_early"] is False
  harness.evaluate(model, processor, questions[:1], mode="sft", progress=False)
  assert model.options[-1]["stop_early"] is False  # no latent steps to stop


def test_resolve_budget_stop_early_precedence():
  model = _Model(latent=object())
  assert harness.resolve_budget(model, "videolatent")["stop_early"] is False
  model.meta = {"train": {"stop_early": True}}  # latent.stop_early as training stores it in the checkpoint
  assert harness.resolve_budget(model, "videolatent")["stop_early"] is True
  assert harness.resolve_budget(model, "continuous_thought")["stop_early"] is True
  assert harness.resolve_budget(model, "videolatent", stop_early=False)["stop_early"] is False
  assert harness.resolve_budget(model, "cot")["stop_early"] is False


def test_a_gated_model_answers_without_the_video_in_latent_modes_only():
  model = _Model(latent=object())
  assert harness.resolve_budget(model, "videolatent")["answer_sees_video"] is True
  model.meta = {"train": {"answer_sees_video": False}}  # trained with latent.sensory_gating
  assert harness.resolve_budget(model, "videolatent")["answer_sees_video"] is False
  assert harness.resolve_budget(model, "continuous_thought")["answer_sees_video"] is False
  assert harness.resolve_budget(model, "sft")["answer_sees_video"] is True  # no latents to carry the video


def test_predict_passes_stop_early_and_window(tmp_path):
  from vlatent_jax import predict

  clip = str(tmp_path / "clip.mp4")
  write_mp4(np.zeros((20, 32, 32, 3), np.uint8), clip, fps=10)
  args = predict.parse_args(["--ckpt", "c", "--video", clip, "--question", "Q?", "--options", "a,b", "--stop-early",
                             "--start", "0.5", "--end", "1.4", "--max-frames", "4", "--repeats", "0"])
  model = _Model(latent=object())
  settings = harness.resolve_settings(model, "videolatent", 2, {"num_frames": 4})
  settings.update(harness.resolve_budget(model, settings["mode"], 4, None, args.stop_early))
  window = (args.start, args.end)
  frames, fps = harness.decode_task((clip, harness.frame_policy(settings["frames"]), window, None))
  assert frames.shape[0] == 4 and fps == pytest.approx(4 / 1.0)  # 4 of frames 5 .. 14: 10 frames = 1 s
  text = predict.chat_prompt(_Processor({}).tokenizer, "Q?", "multiple choice", ["a", "b"])
  result = predict.predict(args, model, _Processor({"index": {text: 0}, "text": ["B"]}), settings, frames, fps, 0.0)
  assert result["answer"] == "B" and result["stop_early"] is True and model.options[-1]["stop_early"] is True
  with pytest.raises(SystemExit):
    predict.parse_args(["--ckpt", "c", "--video", clip, "--question", "Q?", "--start", "2", "--end", "1"])
