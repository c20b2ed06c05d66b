"""Forward / decode benchmark: vlatent_jax `Model` vs Hugging Face Qwen2.5-VL (torch), CPU.

    python bench/forward.py [--frames 8 --size 224 --prompt-text 32 --new-tokens 64
                             --repeats 5 --threads N --bf16 --json OUT]

A small Qwen2.5-VL (8-layer 512-wide GQA decoder, 4-block vision tower) with
random weights is built in torch, saved with `save_pretrained`, and our model is
loaded from that directory, so both run the same weights. One video of
`--frames` frames at `--size`x`--size` plus ~`--prompt-text` text tokens, batch 1.

Measured (median of `--repeats`, after warm-up; compile time reported apart):
  prefill  full forward to prompt logits, vision tower included:
           ours `Model.logits(...)` (host prep + jitted forward + result to numpy),
           HF `model(**inputs)` under `torch.inference_mode()`.
  decode   tokens/s of greedy decoding, isolated from prefill as
           (t(generate n tokens) - t(generate 1 token)) / (n - 1), for both
           `Model.generate` and HF `generate(do_sample=False, min_new_tokens=n)`.

Threads: the process is pinned to `--threads` cores with `os.sched_setaffinity`
before jax is imported. XLA's CPU client sizes its intra-op thread pool from the
schedulable CPU set (checked: N `tf_XLAEigen` threads under an N-core affinity),
so this is how jax is limited to N threads; torch gets `torch.set_num_threads(N)`
(and the same affinity). Default N: all schedulable cores.

Dtypes: float32 by default. `--bf16` runs ours in bfloat16 and, by default, HF
too when torch has native CPU bf16 (oneDNN, e.g. avx512_bf16/AMX: there HF bf16
is faster than its float32); `--hf-dtype` overrides. The table states which.

Before any timing the programs are checked to agree: prompt logits close and the
first 16 greedy tokens equal (fatal in float32; with bfloat16 the token check is
reported, since bfloat16 rounding may flip near-tied argmaxes), and after the
timings that no timed call recompiled.

Shared machines: repeats interleave ours and HF, and each sample records the
background CPU load (other processes, from /proc/stat). The headline is the
median of the quiet samples (< 10% background) where there are any; figures
with no quiet sample are flagged "contended" (multi-threaded torch slows down far
more than XLA under contention, which would inflate the ratios). `--wait-quiet`
waits a while for a quiet machine first; extra rounds run (within the time
budget) while a measurement has no quiet sample.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--frames", type=int, default=8, help="video frames (temporal patch 2 -> grid t = frames/2)")
  p.add_argument("--size", type=int, default=224, help="frame height = width in pixels (multiple of 28)")
  p.add_argument("--prompt-text", type=int, default=32, help="text tokens in the prompt besides the video")
  p.add_argument("--new-tokens", type=int, default=64, help="greedy tokens to generate (>= 2)")
  p.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median reported)")
  p.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: all schedulable)")
  p.add_argument("--bf16", action="store_true",
                 help="run ours in bfloat16; HF too where torch has native CPU bf16 (oneDNN), else HF stays float32")
  p.add_argument("--hf-dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                 help="HF dtype (auto: bfloat16 with --bf16 on a CPU with native bf16, else float32)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--wait-quiet", type=float, default=30.0, metavar="S",
                 help="before timing, wait up to S seconds for background CPU load < 10%% (shared machines)")
  p.add_argument("--json", metavar="OUT", help="write the figures to this JSON file")
  p.add_argument("--no-components", action="store_true", help="skip the per-component (vision/LLM) timings")
  args = p.parse_args(argv)
  if args.new_tokens < 2:
    p.error("--new-tokens must be >= 2")
  if args.size % 28 or args.frames % 2:
    p.error("--size must be a multiple of 28 and --frames even")
  return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
  _cpus = sorted(os.sched_getaffinity(0))
  THREADS = ARGS.threads or len(_cpus)
  if THREADS > len(_cpus):
    sys.exit(f"--threads {THREADS} > {len(_cpus)} schedulable CPUs")
  os.sched_setaffinity(0, _cpus[:THREADS])  # before importing jax: XLA sizes its pool from this
  os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
  os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import vlatent_jax  # noqa: E402
from vlatent_jax.inference import Model  # noqa: E402
from vlatent_jax.models.inputs import prepare_batch  # noqa: E402

QUIET = 0.10           # background load below which a timing sample counts as quiet
TIME_BUDGET_S = 170.0  # stop adding extra rounds after this (the whole run must stay < 5 min)

# Token ids at the top of the 32000 vocabulary.
VOCAB = 32000
IMAGE_ID, VIDEO_ID, VSTART_ID, VEND_ID, BOS_ID = 31990, 31991, 31992, 31993, 1

DECODER = dict(vocab_size=VOCAB, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
               num_attention_heads=8, num_key_value_heads=2, rope_theta=1000000.0, mrope_section=(8, 12, 12),
               rms_norm_eps=1e-6, tie_word_embeddings=False)
VISION = dict(depth=4, hidden_size=256, intermediate_size=512, num_heads=4, out_hidden_size=512,
              fullatt_block_indexes=(3,), window_size=112, tokens_per_second=2)


# --------------------------------------------------------------------------- models

def build_hf(seed: int):
  from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

  text = {k: v for k, v in DECODER.items() if k not in ("rope_theta", "mrope_section", "tie_word_embeddings")}
  text["rope_parameters"] = {"rope_type": "default", "mrope_section": list(DECODER["mrope_section"]),
                             "rope_theta": DECODER["rope_theta"]}
  vision = dict(VISION, fullatt_block_indexes=list(VISION["fullatt_block_indexes"]))
  cfg = Qwen2_5_VLConfig(vision_config=vision, text_config=text, image_token_id=IMAGE_ID, video_token_id=VIDEO_ID,
                         vision_start_token_id=VSTART_ID, vision_end_token_id=VEND_ID,
                         tie_word_embeddings=False, bos_token_id=BOS_ID, eos_token_id=None, pad_token_id=0)
  torch.manual_seed(seed)
  hf = Qwen2_5_VLForConditionalGeneration(cfg).eval()
  # Scaled random init (unit-variance activations, logits of std ~1) so that the
  # greedy argmax has real margins and the agreement check is meaningful.
  with torch.no_grad():
    for name, p in hf.named_parameters():
      if "norm" in name or "ln_q" in name:
        p.copy_(1.0 + 0.1 * torch.randn_like(p))
      elif name.endswith("bias"):
        p.normal_(0.0, 0.02)
      elif "embed_tokens" in name:
        p.normal_(0.0, 1.0)
      else:
        fan_in = p[0].numel()
        p.normal_(0.0, fan_in ** -0.5)
  return hf


def load_ours(hf_dir: str, dtype):
  """Prefers `vlatent_jax.load`; falls back to mapping the saved safetensors with convert/keys.py."""
  try:
    model = vlatent_jax.load(hf_dir, dtype=dtype)
    return model, "vlatent_jax.load"
  except (ImportError, ModuleNotFoundError) as e:
    how = f"fallback key map (vlatent_jax.load unavailable: {e})"
  import glob

  from safetensors.numpy import load_file

  from vlatent_jax.convert import keys
  from vlatent_jax.models.config import LLMConfig, ModelConfig, VisionConfig

  cfg = ModelConfig(vision=VisionConfig(**VISION), llm=LLMConfig(**DECODER), image_token_id=IMAGE_ID,
                    video_token_id=VIDEO_ID, vision_start_token_id=VSTART_ID, vision_end_token_id=VEND_ID,
                    bos_token_id=BOS_ID, eos_token_id=None, pad_token_id=0)
  params: dict = {}
  for f in sorted(glob.glob(os.path.join(hf_dir, "*.safetensors"))):
    for k, v in load_file(f).items():
      path, kind = keys.hf_to_ours(keys.canonical_hf_key(k)[0])
      d = params
      parts = [int(s) if s.isdigit() else s for s in path.split("/")]
      for s in parts[:-1]:
        d = d.setdefault(s, {})
      d[parts[-1]] = keys.to_ours(kind, v)
  return Model(cfg, params, dtype=dtype, source=hf_dir), how


def make_inputs(args, rng: np.random.RandomState):
  t, g = args.frames // 2, args.size // 14
  grid = np.array([[t, g, g]], np.int64)
  n_video = t * g * g // 4
  patches = rng.randn(t * g * g, 3 * 2 * 14 * 14).astype(np.float32)
  n_text = max(2, args.prompt_text)
  pre = [BOS_ID] + list(rng.randint(3, 30000, size=n_text // 4))
  post = list(rng.randint(3, 30000, size=n_text - len(pre)))
  ids = np.array([pre + [VSTART_ID] + [VIDEO_ID] * n_video + [VEND_ID] + post], np.int64)
  return dict(input_ids=ids, attention_mask=np.ones_like(ids), pixel_values_videos=patches,
              video_grid_thw=grid, second_per_grid_ts=np.array([1.0], np.float32)), n_video


def torch_inputs(inputs, dtype):
  tin = {k: torch.tensor(v) for k, v in inputs.items()}
  tin["pixel_values_videos"] = tin["pixel_values_videos"].to(dtype)
  tin["mm_token_type_ids"] = (tin["input_ids"] == VIDEO_ID).long() * 2
  return tin


# --------------------------------------------------------------------------- timing

class CpuMonitor:
  """Background CPU load: machine-wide busy time (/proc/stat) minus this process's CPU time.

  The 2-core machines are shared; other processes' load slows both sides but
  multi-threaded torch (OpenMP barriers spin on a descheduled thread) far more
  than XLA, which inflates the ratios. The figure is reported with the timings.
  """

  def __init__(self):
    self.ncpu = os.cpu_count() or 1
    self.tick = os.sysconf("SC_CLK_TCK")

  @staticmethod
  def _busy_ticks() -> int:
    with open("/proc/stat") as f:
      fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle, iowait

  def __enter__(self):
    self.t0, self.b0, self.c0 = time.perf_counter(), self._busy_ticks(), sum(os.times()[:2])
    return self

  def __exit__(self, *exc):
    wall = time.perf_counter() - self.t0
    busy = (self._busy_ticks() - self.b0) / self.tick
    own = sum(os.times()[:2]) - self.c0
    self.background = max(0.0, busy - own) / (wall * self.ncpu)  # fraction of the machine's CPUs


def background_load(seconds: float = 1.0) -> float:
  with CpuMonitor() as m:
    time.sleep(seconds)
  return m.background


def wait_quiet(max_seconds: float, threshold: float = 0.10) -> float:
  """Waits (up to max_seconds) for a 1 s window of background load below threshold; returns the last load."""
  deadline = time.perf_counter() + max_seconds
  load = background_load()
  while load > threshold and time.perf_counter() < deadline:
    load = background_load()
  return load


def timed(fn, repeats: int) -> tuple[float, list[float]]:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def block(x):
  return jax.block_until_ready(x)


def main(args) -> dict:
  t_start = time.perf_counter()
  torch.set_num_threads(THREADS)
  ours_dtype = jnp.bfloat16 if args.bf16 else jnp.float32
  hf_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(args.hf_dtype)
  if hf_dtype is None:  # auto
    hf_dtype = torch.bfloat16 if args.bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
  n, reps = args.new_tokens, args.repeats

  hf = build_hf(args.seed)
  with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    ours, load_how = load_ours(tmp, ours_dtype)
  hf = hf.to(hf_dtype)
  inputs, n_video = make_inputs(args, np.random.RandomState(args.seed))
  tin = torch_inputs(inputs, hf_dtype)
  seq = inputs["input_ids"].shape[1]
  gen_kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0,
                temperature=None, top_p=None, top_k=None)
  print(f"threads={THREADS} (affinity {sorted(os.sched_getaffinity(0))}, torch {torch.get_num_threads()}), "
        f"jax {jax.__version__} {jax.devices()[0].platform}, torch {torch.__version__}")
  print(f"prompt: {seq} tokens ({n_video} video, grid {inputs['video_grid_thw'][0].tolist()}, "
        f"{inputs['pixel_values_videos'].shape[0]} patches); ours {jnp.dtype(ours_dtype).name} "
        f"loaded via {load_how}; HF {str(hf_dtype).replace('torch.', '')}")

  # ---- compile (first calls), separately timed
  compile_s = {}
  t0 = time.perf_counter(); ours_logits = ours.logits(**inputs); compile_s["logits"] = time.perf_counter() - t0
  t0 = time.perf_counter(); ours_tokens = ours.generate(**inputs, max_new_tokens=n)
  compile_s[f"generate_{n}"] = time.perf_counter() - t0
  t0 = time.perf_counter(); ours.generate(**inputs, max_new_tokens=1); compile_s["generate_1"] = time.perf_counter() - t0

  # ---- correctness
  with torch.inference_mode():
    hf_logits = hf(**tin).logits.float().numpy()
    hf_tokens = hf.generate(**tin, **gen_kw)[:, seq:].numpy()
  err = float(np.abs(ours_logits - hf_logits).max())
  scale = float(np.abs(hf_logits).max())
  top1 = float((ours_logits.argmax(-1) == hf_logits.argmax(-1)).mean())
  k = min(16, n)
  tokens_equal = bool((ours_tokens[:, :k] == hf_tokens[:, :k]).all())
  agree_n = int(np.argmin(np.append(ours_tokens[0] == hf_tokens[0], False)))
  check = dict(logits_max_abs_err=err, logits_max_abs=scale, prompt_top1_agreement=top1,
               first16_tokens_equal=tokens_equal, leading_tokens_equal=agree_n)
  print(f"check: logits max|err| {err:.3g} (max|logit| {scale:.3g}), prompt top-1 agreement {top1:.3f}, "
        f"first {k} greedy tokens equal: {tokens_equal} (leading {agree_n}/{n} equal)")
  strict = not args.bf16 and hf_dtype == torch.float32
  tol = 1e-3 * max(1.0, scale) if strict else 0.1 * max(1.0, scale)
  if err > tol or (strict and not tokens_equal) or top1 < (0.999 if strict else 0.9):
    print("ours:", ours_tokens[0, :k].tolist(), "\nHF:  ", hf_tokens[0, :k].tolist())
    sys.exit("FAIL: ours and HF disagree; refusing to benchmark a wrong program")
  if not tokens_equal:
    print("  note: greedy tokens diverge in reduced precision (logits within tolerance)")

  # ---- timings. Repeats interleave ours and HF so that any background load on
  # the machine hits both sides alike; medians are reported.
  prepared = prepare_batch(ours.config, inputs["input_ids"], inputs["attention_mask"],
                           inputs["pixel_values_videos"], inputs["video_grid_thw"], inputs["second_per_grid_ts"])
  dev_batch = ours._device_batch(prepared)
  g1 = dict(gen_kw, max_new_tokens=1, min_new_tokens=1)
  fns = {
      "ours_prefill": lambda: ours.logits(**inputs),
      # jitted core only (no host prep / numpy conversion), for reference
      "ours_core": lambda: block(ours._logits_fn(ours.state, dev_batch)),
      "hf_prefill": lambda: hf(**tin),
      "ours_gen_n": lambda: ours.generate(**inputs, max_new_tokens=n),
      "ours_gen_1": lambda: ours.generate(**inputs, max_new_tokens=1),
      "hf_gen_n": lambda: hf.generate(**tin, **gen_kw),
      "hf_gen_1": lambda: hf.generate(**tin, **g1),
  }
  samples = {k: [] for k in fns}   # wall seconds
  loads = {k: [] for k in fns}     # background load during each sample
  idle_before = wait_quiet(args.wait_quiet)
  cache_sizes = (ours._logits_fn._cache_size(), ours._generate_fn._cache_size())
  quiet = lambda k: [t for t, l in zip(samples[k], loads[k]) if l < QUIET]  # noqa: E731
  with torch.inference_mode(), CpuMonitor() as monitor:
    hf(**tin)  # warm-up (ours is warm from the compile calls)
    hf.generate(**tin, **g1)
    rounds = 0
    # `reps` rounds; then, while some measurement has no quiet sample, extra
    # rounds (at most `reps` more, within the time budget).
    while rounds < reps or (rounds < 2 * reps and time.perf_counter() - t_start < TIME_BUDGET_S
                            and not all(quiet(k) for k in fns)):
      for name, fn in fns.items():
        with CpuMonitor() as m:
          t0 = time.perf_counter()
          fn()
          samples[name].append(time.perf_counter() - t0)
        loads[name].append(m.background)
      rounds += 1
  if (ours._logits_fn._cache_size(), ours._generate_fn._cache_size()) != cache_sizes:
    sys.exit("FAIL: a timed call recompiled (jit cache grew); timings would include compilation")
  # Headline: median over the quiet samples (background load < 10%) where there
  # are any, else over all samples (flagged as contended).
  med = {k: statistics.median(quiet(k) or samples[k]) for k in fns}
  contended = sorted(k for k in fns if not quiet(k))
  best = {k: min(v) for k, v in samples.items()}
  load = dict(before=idle_before, during=monitor.background, rounds=rounds,
              quiet_samples={k: len(quiet(k)) for k in fns}, contended=contended)
  if contended:
    print(f"WARNING: background CPU load {100 * idle_before:.0f}% before / {100 * monitor.background:.0f}% during "
          f"the timings (other processes on this machine); no quiet sample for {contended}: those figures are "
          "contended (HF's OpenMP threads suffer most)")
  ours_prefill, hf_prefill, ours_core = med["ours_prefill"], med["hf_prefill"], med["ours_core"]
  ours_prefill_all, hf_prefill_all = samples["ours_prefill"], samples["hf_prefill"]
  ours_gen_n, ours_gen_1, hf_gen_n, hf_gen_1 = med["ours_gen_n"], med["ours_gen_1"], med["hf_gen_n"], med["hf_gen_1"]
  ours_step = max(ours_gen_n - ours_gen_1, 1e-9) / (n - 1)
  hf_step = max(hf_gen_n - hf_gen_1, 1e-9) / (n - 1)

  # ---- components (profiling aid)
  components = {}
  if not args.no_components:
    components = profile_components(ours, hf, tin, dev_batch, prepared, reps)

  res = dict(
      config=dict(frames=args.frames, size=args.size, prompt_tokens=seq, video_tokens=n_video,
                  padded_prompt=int(prepared.input_ids.shape[1]), new_tokens=n, repeats=reps, threads=THREADS,
                  ours_dtype=jnp.dtype(ours_dtype).name, hf_dtype=str(hf_dtype).replace("torch.", ""),
                  load=load_how, decoder=dict(DECODER, mrope_section=list(DECODER["mrope_section"])),
                  vision=dict(VISION, fullatt_block_indexes=list(VISION["fullatt_block_indexes"]))),
      check=check,
      prefill_ms=dict(ours=ours_prefill * 1e3, ours_jit_core=ours_core * 1e3, hf=hf_prefill * 1e3,
                      ratio_hf_over_ours=hf_prefill / ours_prefill,
                      ours_all=[x * 1e3 for x in ours_prefill_all], hf_all=[x * 1e3 for x in hf_prefill_all]),
      decode=dict(ours_tok_s=1.0 / ours_step, hf_tok_s=1.0 / hf_step, ratio_ours_over_hf=hf_step / ours_step,
                  ours_generate_n_ms=ours_gen_n * 1e3, ours_generate_1_ms=ours_gen_1 * 1e3,
                  hf_generate_n_ms=hf_gen_n * 1e3, hf_generate_1_ms=hf_gen_1 * 1e3),
      # Same figures from the fastest repeat of each (less sensitive to background load).
      best=dict(ours_prefill_ms=best["ours_prefill"] * 1e3, hf_prefill_ms=best["hf_prefill"] * 1e3,
                prefill_ratio_hf_over_ours=best["hf_prefill"] / best["ours_prefill"],
                ours_tok_s=(n - 1) / max(best["ours_gen_n"] - best["ours_gen_1"], 1e-9),
                hf_tok_s=(n - 1) / max(best["hf_gen_n"] - best["hf_gen_1"], 1e-9)),
      background_load=load,
      compile_s=compile_s,
      components_ms=components,
      targets=dict(prefill_ratio=1.0, decode_ratio=3.0),
      versions=dict(jax=jax.__version__, torch=torch.__version__, python=sys.version.split()[0]),
  )
  res["pass"] = dict(prefill=res["prefill_ms"]["ratio_hf_over_ours"] >= 1.0,
                     decode=res["decode"]["ratio_ours_over_hf"] >= 3.0,
                     contended=bool(contended))
  res["best"]["decode_ratio_ours_over_hf"] = res["best"]["ours_tok_s"] / res["best"]["hf_tok_s"]
  res["total_s"] = time.perf_counter() - t_start
  print_table(res)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(res, f, indent=2)
    print(f"wrote {args.json}")
  return res


def profile_components(ours: Model, hf, tin, dev_batch, prepared, reps) -> dict:
  """Vision tower alone and one decode step's parts, both sides (ms, median)."""
  out = {}
  vis = jax.jit(lambda state, v: _vision(ours, state, v))
  block(vis(ours.state, dev_batch["vision"]))
  out["ours_vision"] = timed(lambda: block(vis(ours.state, dev_batch["vision"])), reps)[0] * 1e3
  with torch.inference_mode():
    visual = hf.model.visual
    px, grid = tin["pixel_values_videos"], tin["video_grid_thw"]
    visual(px, grid_thw=grid)
    out["hf_vision"] = timed(lambda: visual(px, grid_thw=grid), reps)[0] * 1e3
  # lm_head over the (padded) prompt: the largest single matmul of the prefill
  hidden = jnp.zeros((1, prepared.input_ids.shape[1], ours.config.llm.hidden_size), ours.dtype)
  head = jax.jit(lambda state, h: _lm_head(ours, state, h))
  block(head(ours.state, hidden))
  out["ours_lm_head_prompt"] = timed(lambda: block(head(ours.state, hidden)), reps)[0] * 1e3
  with torch.inference_mode():
    th = torch.zeros((1, tin["input_ids"].shape[1], hf.config.text_config.hidden_size), dtype=hf.lm_head.weight.dtype)
    hf.lm_head(th)
    out["hf_lm_head_prompt"] = timed(lambda: hf.lm_head(th), reps)[0] * 1e3
  return {k: float(v) for k, v in out.items()}


def _vision(model: Model, state, v):
  from flax import nnx
  return nnx.merge(model.graphdef, state).vision(v)


def _lm_head(model: Model, state, h):
  from flax import nnx
  return nnx.merge(model.graphdef, state).llm.logits(h).astype(jnp.float32)


def print_table(r: dict) -> None:
  p, d, c = r["prefill_ms"], r["decode"], r["config"]
  cont = set(r["background_load"]["contended"])

  def ok(key):
    verdict = "PASS" if r["pass"][key] else "MISS"
    parts = {"prefill": ("ours_prefill", "hf_prefill"), "decode": ("ours_gen_n", "ours_gen_1", "hf_gen_n", "hf_gen_1")}
    return verdict + ("?(contended)" if cont & set(parts[key]) else "")

  print()
  print(f"{'':24}{'ours':>12}{'HF':>12}{'ratio':>10}{'target':>10}  ")
  print(f"{'prefill ms (lower=better)':24}{p['ours']:12.1f}{p['hf']:12.1f}{p['ratio_hf_over_ours']:10.2f}"
        f"{'>= 1.0':>10}  {ok('prefill')}   (ratio = HF/ours; ours jit core {p['ours_jit_core']:.1f} ms)")
  print(f"{'decode tok/s':24}{d['ours_tok_s']:12.1f}{d['hf_tok_s']:12.1f}{d['ratio_ours_over_hf']:10.2f}"
        f"{'>= 3.0':>10}  {ok('decode')}   (ratio = ours/HF; {c['new_tokens']} new tokens)")
  b = r["best"]
  print(f"{'  best-of-N prefill ms':24}{b['ours_prefill_ms']:12.1f}{b['hf_prefill_ms']:12.1f}"
        f"{b['prefill_ratio_hf_over_ours']:10.2f}")
  print(f"{'  best-of-N decode tok/s':24}{b['ours_tok_s']:12.1f}{b['hf_tok_s']:12.1f}{b['decode_ratio_ours_over_hf']:10.2f}")
  bl = r["background_load"]
  print(f"background CPU load (other processes): {100 * bl['before']:.0f}% before, {100 * bl['during']:.0f}% during "
        f"the timings; {bl['rounds']} rounds, quiet samples per measurement {bl['quiet_samples']} "
        "(headline = median of quiet samples where any)")
  print("compile s: " + ", ".join(f"{k} {v:.1f}" for k, v in r["compile_s"].items()))
  if r["components_ms"]:
    print("components ms: " + ", ".join(f"{k} {v:.1f}" for k, v in r["components_ms"].items()))
  print(f"threads {c['threads']} (torch.set_num_threads + CPU affinity for XLA); ours {c['ours_dtype']}, "
        f"HF {c['hf_dtype']}; prompt {c['prompt_tokens']} tokens (ours padded to {c['padded_prompt']}); "
        f"total {r['total_s']:.0f} s")


if __name__ == "__main__":
  main(ARGS)
