"""vLLM through synthloom vs vLLM's own LLM.generate, same prompts, same process, same GPU.

Pipeline output tokens/s (a `generate` recipe over N prompts, cache off by a fresh run folder)
against one `LLM.generate` call over the same rendered prompts with the same sampling params.
Prints one JSON line: {"bench": "vllm_throughput", "pipeline_tok_s", "bare_tok_s", "ratio"}.
Needs a GPU, vLLM (pip install 'synthloom[vllm]') and a local model:

    python benchmarks/vllm_throughput.py --model /models/Qwen2.5-0.5B-Instruct [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.core.steps import SourceStep, StepConfig
from synthloom.llm.backends.vllm_offline import VLLMBackend, load_vllm
from synthloom.methods.generate import Generate

TOPICS = ["rivers", "prime numbers", "bread", "volcanoes", "sorting", "tides", "bees", "glass"]


class PromptsConfig(StepConfig):
    count: int


class Prompts(SourceStep):
    type_name = "bench_vllm_prompts"
    Config = PromptsConfig

    def read(self, ctx: Any):
        for i in range(self.config.count):
            yield {"topic": f"{TOPICS[i % len(TOPICS)]} #{i}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="200 requests, 64 tokens")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.max_tokens = 200, 64
    vllm = load_vllm()
    engine = vllm.LLM(model=args.model, gpu_memory_utilization=0.85)
    backend = VLLMBackend(args.model, engine=engine, vllm_module=vllm)

    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "prompt.jinja"
        template.write_text("Write a short paragraph about {{ topic }}.")
        step = Generate(name="text", template=str(template), temperature=0.8,
                        max_tokens=args.max_tokens)
        recipe = Recipe(name="bench-vllm", sources=[Prompts(name="p", count=args.requests)],
                        steps=[step], seed=0)
        started = time.perf_counter()
        summary = asyncio.run(run_recipe(recipe, Path(tmp) / "run", RunOptions(
            backend=backend, concurrency=1024, batch_size=256))).to_json()
        pipeline_s = time.perf_counter() - started
        pipeline_tokens = summary["completion_tokens"]

    tokenizer = engine.get_tokenizer()
    prompts = [tokenizer.apply_chat_template(
        [{"role": "user", "content": f"Write a short paragraph about {p['topic']}."}],
        tokenize=False, add_generation_prompt=True) for p in Prompts(name="p", count=args.requests)
        .read(None)]
    params = [vllm.SamplingParams(temperature=0.8, max_tokens=args.max_tokens, seed=i)
              for i in range(len(prompts))]
    started = time.perf_counter()
    outputs = engine.generate(prompts, params, use_tqdm=False)
    bare_s = time.perf_counter() - started
    bare_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)

    pipeline_rate, bare_rate = pipeline_tokens / pipeline_s, bare_tokens / bare_s
    print(json.dumps({"bench": "vllm_throughput", "model": args.model, "requests": args.requests,
                      "pipeline_tok_s": round(pipeline_rate, 1), "bare_tok_s": round(bare_rate, 1),
                      "ratio": round(pipeline_rate / bare_rate, 3)}))


if __name__ == "__main__":
    sys.exit(main())
