"""Round-trip time of one visitor's analyses and slider moves, one call at a time, against a launched page.

Builds the page of ``--root`` (default: this checkout) on its shipped models in-process on loopback
and, from one gradio_client session, alternates ``--calls`` analyses of an example note with slider
moves, each waited for. Prints the p50 and p95 milliseconds of each kind and the size of a slider
reply. Run it on two checkouts back to back to compare them under the same machine load.

    python scripts/bench_round_trip.py [--root ../other-checkout] [--calls 15]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(args.root).resolve()))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from gradio_client import Client

    from epee_demo.data.examples import EXAMPLE_NOTES
    from epee_demo.ui import build_demo, launch_options

    demo = build_demo()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    try:
        client = Client(demo.local_url, verbose=False)
        # a page whose analysis endpoint is documented lets the client fill in the rule; one whose is not
        # (internal handlers hidden) takes every value
        documented = "/analyze_organ_system" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        note = (EXAMPLE_NOTES[0].text,) if documented else (EXAMPLE_NOTES[0].text, "epee")
        analyses, moves, reply = [], [], None
        for step in range(args.calls):
            started = time.perf_counter()
            client.predict(*note, api_name="/analyze_organ_system")
            analyses.append(time.perf_counter() - started)
            started = time.perf_counter()
            reply = client.predict("epee", 0.1 * (step % 10), 3, 0.9, 0.05, "js", 1, api_name="/set_tau_organ_system")
            moves.append(time.perf_counter() - started)
        load = os.getloadavg()[0]
        for name, times in (("analysis", analyses), ("slider", moves)):
            ms = 1000 * np.array(times)
            print(f"{name}: p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms ({len(ms)} calls)")
        print(f"slider reply {len(json.dumps(reply))} bytes; load average {load:.1f}; root {args.root}")
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
