#!/usr/bin/env python
"""Serve any critic backend behind an OpenAI-compatible /v1/chat/completions API (for `--critic remote`).

    python scripts/serve_critic.py --critic primo --critic-option model=runs/grpo --port 8000
    python scripts/rollout.py --env Lift --critic remote --critic-option base_url=http://127.0.0.1:8000/v1

For production serving of PRIMO-R1-7B use vLLM (docs/vlm.md); this server is for tests and small setups. It
binds to loopback by default. The --fail-first/--delay options inject faults for the client's tests.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from primo_loop.cli import new_parser, parse_options, run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(__doc__)
    p.add_argument("--critic", default="primo",
                   help="a registered critic name (primo, compact, ...) or package.module:Factory")
    p.add_argument("--critic-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable (e.g. model=/path/to/checkpoint)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; the URL is printed)")
    p.add_argument("--model-name", default="primo-critic", help="the model id listed at /v1/models")
    p.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="require the API key held in this environment variable")
    p.add_argument("--max-batch", type=int, default=8, help="most queries per critic call")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a query waits for batch company")
    p.add_argument("--fail-first", type=int, default=0, help="(tests) answer the first N chat requests with an error")
    p.add_argument("--fail-status", type=int, default=500, help="(tests) HTTP status of injected failures")
    p.add_argument("--delay", type=float, default=0.0, help="(tests) seconds to wait before answering")
    p.add_argument("--delay-first", type=int, default=None, help="(tests) delay only the first N requests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from primo_loop.critics import make_critic
    from primo_loop.critics.serving import CriticServer, Faults
    from primo_loop.errors import ConfigError

    name = args.critic
    critic = make_critic(name, **parse_options(args.critic_option))
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env names ${args.api_key_env}, which is not set")
    faults = Faults(fail_first=args.fail_first, fail_status=args.fail_status, delay_s=args.delay,
                    delay_first=args.delay_first)
    server = CriticServer(critic, args.host, args.port, model_name=args.model_name, api_key=api_key,
                          max_batch=args.max_batch, batch_wait_s=args.batch_wait_ms / 1000.0, faults=faults)
    print(f"serving critic {name!r} at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("stopped")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    run(main)
