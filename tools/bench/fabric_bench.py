#!/usr/bin/env python3
"""Fabric analysis benchmark: portalctl against networkx, same graphs, same run.

For each size, `portalctl bench` generates a synthetic fabric (racks, pods,
shared portals), times reach + critical connections + critical hosts and one
route, and writes the fabric's attachments as an edge list. networkx then
loads the same edge list and is timed on connected_components + bridges +
articulation_points + one shortest path. Load times are not counted on
either side. Prints a table and the ratio; this is a benchmark, not a test.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PORTALCTL = REPO / "tools" / "target" / "release" / "portalctl"


def ensure_networkx():
    try:
        import networkx  # noqa: F401
        return
    except ImportError:
        pass
    venv = Path(os.environ.get("CXLSW_CACHE", Path.home() / ".cache" / "cxl_switched")) / "venv-bench"
    py = venv / "bin" / "python3"
    if not py.exists():
        print(f"==> bench: creating {venv} and installing networkx from PyPI", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "networkx"], check=True)
    os.execv(str(py), [str(py)] + sys.argv)


def run_nx(edges: Path, hosts: int, vertices: int):
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(vertices))
    with open(edges) as f:
        g.add_edges_from((int(a), int(b)) for a, b in (line.split() for line in f))
    t = time.perf_counter()
    comps = sum(1 for _ in nx.connected_components(g))
    bridges = sum(1 for _ in nx.bridges(g))
    aps = sum(1 for _ in nx.articulation_points(g))
    t_analyse = time.perf_counter() - t
    t = time.perf_counter()
    try:
        hops = (len(nx.shortest_path(g, 0, hosts - 1)) - 1) // 2
    except nx.NetworkXNoPath:
        hops = None
    t_route = time.perf_counter() - t
    return t_analyse, t_route, comps, bridges, aps, hops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    args = ap.parse_args()
    ensure_networkx()
    import networkx as nx

    if not PORTALCTL.exists():
        sys.exit(f"bench: {PORTALCTL} missing; run `make tools`")
    print(f"networkx {nx.__version__}; portalctl {PORTALCTL}")
    print("times in ms; analyse = reach + critical connections + critical hosts")
    print(f"{'hosts':>9} {'portals':>9} {'attach':>9} | {'portalctl':>10} {'route':>8} | "
          f"{'networkx':>10} {'route':>8} | {'ratio':>6}")
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as d:
            edges = Path(d) / "edges"
            out = subprocess.run([str(PORTALCTL), "bench", "--json", "--hosts", str(n), "--edges", str(edges)],
                                 check=True, capture_output=True, text=True)
            ours = json.loads(out.stdout)
            nx_an, nx_rt, comps, bridges, aps, hops = run_nx(edges, n, ours["hosts"] + ours["portals"])
        if hops != ours["route_hops"]:
            sys.exit(f"bench: route hops differ: portalctl {ours['route_hops']}, networkx {hops}")
        ours_total = ours["analyse_s"] + ours["route_s"]
        ratio = (nx_an + nx_rt) / ours_total if ours_total > 0 else float("inf")
        print(f"{ours['hosts']:>9} {ours['portals']:>9} {ours['attachments']:>9} | "
              f"{ours['analyse_s'] * 1e3:>10.1f} {ours['route_s'] * 1e3:>8.2f} | "
              f"{nx_an * 1e3:>10.1f} {nx_rt * 1e3:>8.2f} | "
              f"{ratio:>5.0f}x", flush=True)


if __name__ == "__main__":
    main()
