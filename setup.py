from setuptools import find_packages, setup

setup(
    name="vlatent_jax",
    version="0.1.0",
    description="Video latent reasoning (VideoLatent) in JAX/Flax, with a Qwen2.5-VL port equal to Hugging Face's.",
    packages=find_packages(include=["vlatent_jax", "vlatent_jax.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax",
        "orbax-checkpoint",
        "etils[epath]",  # run directories (gs:// needs a GCS backend too: etils[epath-gcs])
        "transformers>=5",
        "grain",
        "decord",
        "av",
        "tokenizers",
        "einops",
        "ml-collections",
        "safetensors",
        "numpy",
        "msgpack",  # data/records.py: the shard record codec (flax's wire format, without flax)
        "pillow",
        "pyarrow",  # eval: benchmarks released as parquet (Video-MME, VSI-Bench, VideoMMMU, TempCompass, ...)
        "absl-py",
        "tensorboardX",
        "matplotlib",
    ],
    extras_require={
        # The PyTorch reference is for parity tests only; the package never imports torch.
        "test": ["pytest", "torch==2.14.1", "torchvision==0.29.1", "pillow"],
    },
)
