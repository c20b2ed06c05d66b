"""prepare: manifest -> ArrayRecord shards + spec.json + report.json; bad rows skipped and reported; resumable, exact."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader
from test_video import moving_frames

from vlatent_jax.data import prepare, preprocess, records
from vlatent_jax.data.prompts import chat_prompt
from vlatent_jax.data.tokenizer import train_tokenizer
from vlatent_jax.data.video import read_frames, write_mp4

PIXELS = ["--min-pixels", str(28 * 28 * 4), "--max-pixels", str(28 * 28 * 16)]
HAS_AV1 = "libsvtav1" in av.codecs_available
MC = {"question": "What color is the ball?", "options": ["red", "blue", "green"]}
# (line, row): lines 7, 10, 11 are malformed; 4/6/8/9/12 have bad videos; 14 reuses v0's video.
BASE_ROWS = [
    {"video": "v0.mp4", "answer": "B", **MC, "id": "first"},
    {"video": "v1.mp4", "question": "How many balls?", "answer": "3"},
    {"video": "v2.mp4", "question": "What moves?", "answer": "the ball"},
    {"video": "corrupt.mp4", "question": "How many?", "answer": "2"},
    {"video": "v3.mp4", "answer": "C. green", **MC},
    {"video": "truncated.mp4", "question": "How many?", "answer": "2"},
    '{"video": "v0.mp4", "question": ',
    {"video": "empty.mp4", "question": "How many?", "answer": "2"},
    {"video": "missing.mp4", "question": "How many?", "answer": "2"},
    {"question": "Where is the video?", "answer": "x"},
    {"video": "v4.mp4", "question": "Which?", "answer": "A", "question_type": "multiple choice"},
    {"video": "hang.mp4", "question": "How many?", "answer": "1"},
    {"video": "av1.mp4" if HAS_AV1 else "v5.mp4", "question": "What is shown?", "answer": "a gradient"},
    {"video": "v0.mp4", "question": "What text is shown?", "answer": "none", "question_type": "OCR"},
    {"video": "v5.mp4", "question": "How fast?", "answer": "2.5", "question_type": "regression"},
]
WRITTEN_LINES = [1, 2, 3, 5, 13, 14, 15]
SKIPPED = {4: "corrupt", 6: "truncated", 7: "malformed row", 8: "empty", 9: "missing", 10: "malformed row",
           11: "malformed row", 12: "timeout"}


def _encode_av1(frames, path):
  with av.open(path, "w") as c:
    s = c.add_stream("libsvtav1", rate=4)
    s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    for f in frames:
      for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        c.mux(p)
    for p in s.encode():
      c.mux(p)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  for i in range(6):
    write_mp4(moving_frames(4 + 2 * i, 56, 56, seed=i), str(root / f"v{i}.mp4"), fps=4)
  shutil.copy(root / "v1.mp4", root / "hang.mp4")
  if HAS_AV1:
    _encode_av1(moving_frames(8, 64, 64, seed=9), str(root / "av1.mp4"))
  blob = (root / "v5.mp4").read_bytes()
  (root / "truncated.mp4").write_bytes(blob[:len(blob) // 2])
  (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
  (root / "empty.mp4").write_bytes(b"")
  train_tokenizer(["What color is the ball? red blue green. How many balls? 3 2 1 2.5 the ball moves. "
                   "Answer with a single number directly. Options: A. B. C."] * 20, str(root / "tokenizer"), 320)
  with open(root / "m.jsonl", "w") as f:
    for r in BASE_ROWS:
      f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
  return root


def _run(data, out, *extra, manifest="m.jsonl", workers=2, hang=True):
  env = {prepare.HANG_ENV: "hang.mp4"} if hang else {}
  with pytest.MonkeyPatch.context() as mp:
    for k, v in env.items():
      mp.setenv(k, v)
    code = prepare.main(["--manifest", str(data / manifest), "--out", str(out), "--workers", str(workers),
                         "--shard-size", "3", "--timeout", "2", *PIXELS, *extra])
  with open(os.path.join(out, "report.json")) as f:
    return code, json.load(f)


def _shards(out):
  return {n: open(os.path.join(out, n), "rb").read() for n in sorted(os.listdir(out)) if n.endswith(".array_record")}


def _records(out):
  spec = json.load(open(os.path.join(out, "spec.json")))
  return spec, [records.decode(b) for s in spec["shards"]
                for b in ArrayRecordReader(os.path.join(out, s["path"])).read_all()]


@pytest.fixture(scope="module")
def base(data, tmp_path_factory):
  out = tmp_path_factory.mktemp("base")
  code, report = _run(data, out)  # tokenizer found next to the manifest
  return out, code, report


def test_report(base):
  out, code, report = base
  assert code == 0
  assert report["written"] == len(WRITTEN_LINES)
  assert {s["line"]: s["kind"] for s in report["skipped"]} == SKIPPED
  assert [s["line"] for s in report["skipped"]] == sorted(SKIPPED)
  by_line = {s["line"]: s for s in report["skipped"]}
  assert by_line[12]["reason"] == "timeout after 2s" and by_line[12]["video"].endswith("hang.mp4")
  for line in (4, 6, 8, 9):
    assert by_line[line]["video"] in by_line[line]["reason"]  # errors name the file
  assert by_line[10]["reason"] == "missing field 'video'" and "without options" in by_line[11]["reason"]
  assert report["skipped_by_reason"] == {"corrupt": 1, "empty": 1, "malformed row": 3, "missing": 1,
                                         "timeout": 1, "truncated": 1}
  assert report["question_types"]["multiple choice"] == {"written": 2, "skipped": 0}
  assert report["question_types"]["numerical"] == {"written": 1, "skipped": 5}
  assert report["rows"] == 15 and report["worker_restarts"] == 1 and report["seconds"] > 0
  assert report["options"]["timeout"] == 2 and report["options"]["tokenizer"].endswith("tokenizer")
  if HAS_AV1:  # decord cannot open AV1: that file was decoded by PyAV
    assert [f["line"] for f in report["fallbacks"]] == [13]


def test_records_and_spec(base, data):
  out, _, _ = base
  spec, recs = _records(out)
  assert [s["path"] for s in spec["shards"]] == [f"shard-0000{k}-of-00004.array_record" for k in range(4)]
  assert [s["count"] for s in spec["shards"]] == [3, 1, 0, 3] and spec["num_records"] == 7
  assert spec["fps"] == 2.0 and spec["max_frames"] == 16 and spec["num_frames"] is None
  config = preprocess.VideoProcessorConfig(**{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in spec["processor"].items()})
  assert (config.min_pixels, config.max_pixels) == (3136, 12544)
  assert [r["meta"]["line"] for r in recs] == WRITTEN_LINES  # manifest order
  tok = __import__("transformers").AutoTokenizer.from_pretrained(str(data / "tokenizer"))
  video_id, end_id = tok.convert_tokens_to_ids(["<|video_pad|>", "<|im_end|>"])
  for r in recs:
    m = r["meta"]
    frames, fps = read_frames(m["video"])
    patches, grid = preprocess.patchify_uint8(frames, config)
    np.testing.assert_array_equal(r["patches"], patches)
    np.testing.assert_array_equal(r["video_grid_thw"], grid[None])
    np.testing.assert_allclose(r["second_per_grid_ts"], [2 / fps], rtol=1e-6)
    count = int(np.prod(grid)) // 4
    assert int((r["prompt_ids"] == video_id).sum()) == count
    text = chat_prompt(tok, m["question"], m["question_type"], m["options"]).replace(
        "<|video_pad|>", "<|video_pad|>" * count)
    assert r["prompt_ids"].tolist() == tok(text, add_special_tokens=False)["input_ids"]
    assert r["answer_ids"][-1] == end_id
    assert r["answer_ids"][:-1].tolist() == tok(m["answer"], add_special_tokens=False)["input_ids"]
  assert [r["meta"]["answer"] for r in recs[:4]] == ["B", "3", "the ball", "C"]
  assert recs[0]["meta"]["id"] == "first" and recs[0]["meta"]["options"] == MC["options"]
  np.testing.assert_array_equal(recs[0]["patches"], recs[5]["patches"])  # line 14 reuses v0.mp4


def test_rerun_and_resume_are_byte_identical(base, data, tmp_path):
  out, _, report = base
  want = _shards(out)
  work = tmp_path / "copy"
  shutil.copytree(out, work)
  code, again = _run(data, work)
  assert code == 0 and again["shards"] == {"total": 4, "written_now": 0, "kept": 4}
  assert _shards(work) == want and again["skipped"] == report["skipped"]
  os.remove(work / "shard-00001-of-00004.array_record")
  _, again = _run(data, work, workers=1)
  assert again["shards"]["written_now"] == 1 and _shards(work) == want and again["skipped"] == report["skipped"]
  with pytest.raises(SystemExit, match="other inputs or options"):
    _run(data, work, "--fps", "1")


def _group_alive(pgid):
  try:
    os.killpg(pgid, 0)
    return True
  except ProcessLookupError:
    return False


def test_resume_after_interrupted_run(base, data, tmp_path):
  """Kill a run mid-way (a video hangs, the timeout is long), then resume: same shards as an uninterrupted run."""
  out, _, _ = base
  work = tmp_path / "killed"
  cmd = [sys.executable, "-m", "vlatent_jax.data.prepare", "--manifest", str(data / "m.jsonl"), "--out", str(work),
         "--workers", "2", "--shard-size", "3", "--timeout", "300", *PIXELS]
  proc = subprocess.Popen(cmd, env={**os.environ, prepare.HANG_ENV: "hang.mp4"}, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 60
    while not (work / "shard-00001-of-00004.array_record").exists():
      assert time.time() < deadline and proc.poll() is None, "the first shards never appeared"
      time.sleep(0.1)
    proc.kill()  # only the CLI: its forkserver and workers (one hung in C) must follow it
    proc.wait()
    deadline = time.time() + 10
    while _group_alive(proc.pid):
      assert time.time() < deadline, "worker processes outlived the killed run"
      time.sleep(0.1)
  finally:
    if _group_alive(proc.pid):
      os.killpg(proc.pid, signal.SIGKILL)
  assert not (work / "shard-00002-of-00004.array_record").exists() and not (work / "report.json").exists()
  code, report = _run(data, work)
  assert code == 0 and report["shards"] == {"total": 4, "written_now": 2, "kept": 2}
  assert _shards(work) == _shards(out)


def test_formats_decoders_and_worker_count(data, tmp_path):
  """Video-R1 (JSON array) and LLaVA rows; PyAV gives the same records; 1 or 2 workers give the same bytes."""
  r1 = [{"problem_id": i, "problem": "How many balls?", "data_type": "video", "problem_type": "numerical",
         "options": [], "solution": f"<answer>{i}</answer>", "path": f"./v{i}.mp4"} for i in range(5)]
  r1 += [{"problem_id": 9, "problem": "Which?", "data_type": "image", "problem_type": "numerical",
          "options": [], "solution": "<answer>1</answer>", "path": "./x.jpg"}]
  (data / "r1.json").write_text(json.dumps(r1, indent=2))
  code, report = _run(data, tmp_path / "r1", manifest="r1.json", hang=False)
  assert code == 0 and report["written"] == 5 and [(s["line"], s["kind"]) for s in report["skipped"]] == [
      (6, "malformed row")]
  _, report = _run(data, tmp_path / "r1_pyav", "--decoder", "pyav", manifest="r1.json", hang=False)
  assert _shards(tmp_path / "r1_pyav") == _shards(tmp_path / "r1")
  _, report = _run(data, tmp_path / "r1_one", manifest="r1.json", hang=False, workers=1)
  assert _shards(tmp_path / "r1_one") == _shards(tmp_path / "r1")

  conv = [{"from": "human", "value": "<video>\nWhat color is the ball?\nA. red\nB. blue\nC. green"},
          {"from": "gpt", "value": "B. blue"}]
  with open(data / "llava.jsonl", "w") as f:
    for i in range(3):
      f.write(json.dumps({"id": f"l{i}", "video": f"v{i}.mp4", "conversations": conv}) + "\n")
  code, report = _run(data, tmp_path / "llava", "--num-frames", "3", "--format", "llava", manifest="llava.jsonl")
  spec, recs = _records(tmp_path / "llava")
  assert code == 0 and report["written"] == 3 and spec["frame_policy"] == "3 frames evenly spaced"
  assert [r["meta"]["answer"] for r in recs] == ["B"] * 3 and all(r["video_grid_thw"][0, 0] == 2 for r in recs)


def test_cli_errors(data, tmp_path):
  (tmp_path / "m.jsonl").write_text(json.dumps({"video": "a.mp4", "question": "q", "answer": "a"}) + "\n")
  with pytest.raises(SystemExit):
    prepare.parse_args(["--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o")])
  res = subprocess.run([sys.executable, "-m", "vlatent_jax.data.prepare", "--manifest", str(tmp_path / "m.jsonl"),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
  assert res.returncode == 2 and "--tokenizer is required" in res.stderr
  args = prepare.parse_args(["--manifest", str(data / "m.jsonl"), "--out", str(tmp_path / "o")])
  assert args.tokenizer == str(data / "tokenizer") and args.workers >= 1


def test_pixel_budget_from_tokenizer_dir_or_options(data, tmp_path):
  tok = tmp_path / "tok"
  shutil.copytree(data / "tokenizer", tok)
  (tok / "preprocessor_config.json").write_text(json.dumps({"min_pixels": 3136, "max_pixels": 6272}))
  args = prepare.parse_args(["--manifest", str(data / "m.jsonl"), "--out", str(tmp_path / "o"), "--tokenizer", str(tok)])
  config = prepare._processor_config(args, str(tok))
  assert (config.min_pixels, config.max_pixels) == (3136, 6272)
  args.max_pixels = 12544
  assert prepare._processor_config(args, str(tok)).max_pixels == 12544
  args.max_pixels = None
  assert prepare._processor_config(args, str(data / "tokenizer")).min_pixels == 128 * 28 * 28  # HF default
  args.min_pixels = 20000
  with pytest.raises(SystemExit, match="min-pixels"):
    prepare._processor_config(args, str(tok))
