"""National-scale benchmark: ``python -m benchmarks.national`` (or ``./dev.sh bench``).

Loads a synthetic national deployment (``benchmarks.generate``) into
pouchdb-server, starts the DHIS2 stand-in with matching metadata, then measures,
each mediator run in a child process of its own (``benchmarks.worker``) so its
peak memory is the mediator's alone:

- the floor: a bare paged read of one month's target docs, and the same month
  aggregated by the mediator (``compute``), alternated ``--repeats`` times: once
  with nothing kept (a first run, "cold") and once with the contacts the previous
  run kept in ``MEDIATOR_STATE_DIR`` (every later run, "warm": ``cht_cache``);
- a push of one month, the identical re-run (exact push: nothing sent), the
  3-month window, and a month with twice the target docs (same org units);
- pure aggregation on docs already in memory, and the share of JSON decoding.

It prints a table and writes the figures as JSON (``--out``) so runs can be
compared. Timings are this machine's; the targets are ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.generate import DATA_SET, National, Spec, batches
from devstack.couchdb import CouchServer
from devstack.dhis2_standin import Dhis2StandIn
from mediator.engine import Aggregation, lineage_ids

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DHIS2_USER, DHIS2_PASSWORD = "admin", "district"
DB = "medic"

# What the issue asks of the default deployment on a 2-core machine.
TARGETS = {
    "read_bound_ratio_max": 1.3,
    "pure_docs_per_second_min": 50_000,
    "peak_rss_mb_max": 200,
    "rss_growth_when_docs_double_max": 0.10,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.national", description=__doc__)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every count (default 1)")
    p.add_argument("--small", action="store_true", help="the CI preset: --scale 0.01 --repeats 1")
    p.add_argument("--counties", type=int)
    p.add_argument("--sub-counties", type=int)
    p.add_argument("--wards", type=int)
    p.add_argument("--cus", type=int, help="community units (each a DHIS2 org unit)")
    p.add_argument("--users", type=int, help="CHW users")
    p.add_argument("--months", type=int, default=3, help="months of target docs (the window)")
    p.add_argument("--targets", type=int, default=30, help="targets per target doc")
    p.add_argument("--mapped", type=int, default=20, help="targets mapped to DHIS2")
    p.add_argument("--never-synced", type=float, default=0.03, help="share of users")
    p.add_argument("--page-size", type=int, default=1000, help="CHT_PAGE_SIZE")
    p.add_argument("--owner-batch", type=int, default=500, help="CHT_OWNER_BATCH")
    p.add_argument("--chunk-size", type=int, default=500, help="DHIS2_CHUNK_SIZE")
    p.add_argument("--repeats", type=int, default=5, help="bare read vs aggregate alternations")
    p.add_argument("--no-double", action="store_true", help="skip the 2x target docs month")
    p.add_argument("--out", type=Path, help="JSON file (default benchmarks/results/<time>.json)")
    args = p.parse_args(argv)
    if args.small:
        args.scale, args.repeats = 0.01, 1
    return args


def build_spec(args: argparse.Namespace) -> Spec:
    months = tuple(f"2024-{m:02d}" for m in range(1, args.months + 1))
    spec = Spec(
        targets=args.targets,
        mapped=min(args.mapped, args.targets),
        months=months,
        never_synced=args.never_synced,
        double_month=None if args.no_double else "2023-12",
    ).scaled(args.scale)
    given = {
        "counties": args.counties,
        "sub_counties": args.sub_counties,
        "wards": args.wards,
        "cus": args.cus,
        "users": args.users,
    }
    return replace(spec, **{k: v for k, v in given.items() if v is not None})


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "node": node.stdout.strip(),
        "platform": platform.platform(),
    }


def load(couch: CouchServer, nat: National) -> dict[str, Any]:
    """Create the medic database and bulk-load the deployment in big batches."""
    couch.create_db(DB)
    start = time.perf_counter()
    docs = 0
    for batch in batches(nat.all_docs(), 5000):
        couch.bulk(DB, batch, batch=5000)
        docs += len(batch)
    # build the contacts_by_dhis_orgunit view now, not inside the first timed run
    couch.session().get(
        f"{couch.url}/{DB}/_design/medic-admin/_view/contacts_by_dhis_orgunit",
        params={"limit": "1"},
        timeout=600,
    ).raise_for_status()
    return {"docs": docs, "seconds": round(time.perf_counter() - start, 2)}


class Runner:
    """Starts one worker process per measured run and counts DHIS2 requests."""

    def __init__(self, couch: CouchServer, standin: Dhis2StandIn, args: argparse.Namespace):
        self.couch, self.standin, self.args = couch, standin, args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))

    def run(self, mode: str, months: list[str], state_dir: Path | None = None) -> dict[str, Any]:
        task = {
            "mode": mode,
            "months": months,
            "url": self.couch.url,
            "db": DB,
            "username": self.couch.username,
            "password": self.couch.password,
            "page_size": self.args.page_size,
            "owner_batch": self.args.owner_batch,
            "chunk_size": self.args.chunk_size,
            "dhis2_url": self.standin.url,
            "dhis2_username": DHIS2_USER,
            "dhis2_password": DHIS2_PASSWORD,
            "state_dir": str(state_dir) if state_dir else None,
        }
        task_file, result_file = self.tmp / "task.json", self.tmp / "result.json"
        task_file.write_text(json.dumps(task))
        result_file.unlink(missing_ok=True)
        with self.standin.store.lock:
            self.standin.store.requests.clear()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", str(task_file), str(result_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"worker {mode} {months} failed:\n{proc.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(result_file.read_text())
        with self.standin.store.lock:
            seen = list(self.standin.store.requests)
            self.standin.store.requests.clear()
        result["dhis2_http_requests"] = len(seen)
        result["dhis2_posts"] = sum(
            1 for r in seen if r.method == "POST" and r.path.endswith("dataValueSets")
        )
        result["dhis2_value_reads"] = sum(
            1 for r in seen if r.method == "GET" and r.path.endswith("dataValueSets")
        )
        print(
            f"  {mode} {','.join(months)}: {result['wall_seconds']:.2f} s wall, "
            f"{result['cpu_seconds']:.2f} s CPU, {result['peak_rss_mb']:.0f} MB peak, "
            f"CHT wait {result['wait_cht']:.2f} s, DHIS2 wait {result['wait_dhis2']:.2f} s, "
            f"{result['cht_requests']} CHT / {len(seen)} DHIS2 requests",
            file=sys.stderr,
        )
        return result


def pure_aggregation(nat: National, month: str, page_size: int, repeats: int) -> dict[str, Any]:
    """Docs already in memory: time ``Aggregation.add_target_docs`` alone (owners
    resolved beforehand), and ``json.loads`` of the same pages as CouchDB sends them."""
    settings = nat.app_settings()
    places = [doc for doc in nat.place_docs() if doc.get("dhis")]
    lineages = {doc["_id"]: lineage_ids(doc) for doc in nat.person_docs(nat.spec.users)}
    docs = list(nat.target_docs(month))
    pages = [docs[i : i + page_size] for i in range(0, len(docs), page_size)]
    bodies = [
        json.dumps(
            {
                "total_rows": len(docs),
                "offset": 0,
                "rows": [
                    {"id": d["_id"], "key": d["_id"], "value": {"rev": "1-x"}, "doc": d}
                    for d in page
                ],
            }
        ).encode()
        for page in pages
    ]
    best_agg = best_json = math.inf
    values = 0
    for _ in range(repeats):
        agg = Aggregation(settings, DATA_SET, month.replace("-", ""))
        agg.add_places(places)
        for owner, lineage in lineages.items():
            agg.add_owner(owner, lineage)
        start = time.perf_counter()
        for page in pages:
            agg.add_target_docs(page)
        best_agg = min(best_agg, time.perf_counter() - start)
        values = len(agg.data_values())
        start = time.perf_counter()
        for body in bodies:
            json.loads(body)
        best_json = min(best_json, time.perf_counter() - start)
    return {
        "docs": len(docs),
        "values": values,
        "aggregate_seconds": best_agg,
        "docs_per_second": len(docs) / best_agg if best_agg else 0.0,
        "json_decode_seconds": best_json,
        "json_bytes": sum(len(b) for b in bodies),
        "json_share_of_decode_plus_aggregate": best_json / (best_json + best_agg),
    }


def split(r: dict[str, Any]) -> dict[str, float]:
    """Where the wall time of one run went, from the main thread's point of view."""
    wall = r["wall_seconds"]
    own = max(0.0, wall - r["wait_cht"] - r["wait_dhis2"])
    return {
        "wall_s": round(wall, 2),
        "waiting_on_cht_s": round(r["wait_cht"], 2),
        "waiting_on_dhis2_s": round(r["wait_dhis2"], 2),
        "mediator_main_thread_s": round(own, 2),
        "mediator_cpu_all_threads_s": round(r["cpu_seconds"], 2),
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    spec = build_spec(args)
    nat = National(spec)
    os.environ.setdefault("NODE_OPTIONS", "--max-old-space-size=4096")
    out: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.national " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "spec": {**asdict(spec), "org_units": spec.cus, "rows_per_org_unit": nat.rows},
        "settings": {
            "page_size": args.page_size,
            "owner_batch": args.owner_batch,
            "chunk_size": args.chunk_size,
        },
        "targets": TARGETS,
    }
    first, window = spec.months[0], list(spec.months)
    print("pure aggregation (docs in memory)…", file=sys.stderr)
    out["pure"] = pure_aggregation(nat, first, args.page_size, max(1, args.repeats))
    with CouchServer() as couch:
        print(f"loading the deployment into pouchdb-server at {couch.url}…", file=sys.stderr)
        out["load"] = load(couch, nat)
        standin = Dhis2StandIn(metadata=nat.dhis2_metadata(), version="2.41.1").start()
        try:
            runner = Runner(couch, standin, args)
            bare, cold, warm = [], [], []
            for i in range(max(1, args.repeats)):
                print(f"bare read vs aggregate (cold, warm), round {i + 1}…", file=sys.stderr)
                state = Path(tempfile.mkdtemp(prefix="bench-state-"))
                bare.append(runner.run("bare", [first]))
                cold.append(runner.run("aggregate", [first], state))
                warm.append(runner.run("aggregate", [first], state))
            runs: dict[str, Any] = {"bare": bare, "aggregate_cold": cold, "aggregate": warm}
            # the pushes share one state dir, as a deployment's runs do: the first is cold
            state = Path(tempfile.mkdtemp(prefix="bench-state-"))
            steps = [
                ("push_1_month", [first]),
                ("push_1_month_rerun", [first]),
                ("push_window", window),
            ]
            if spec.double_month:
                steps += [
                    ("aggregate_double", [spec.double_month]),
                    ("push_double", [spec.double_month]),
                ]
            for name, months in steps:
                print(f"{name} {months}…", file=sys.stderr)
                mode = "aggregate" if name.startswith("aggregate") else "push"
                runs[name] = runner.run(mode, months, state)
        finally:
            standin.stop()
    out["runs"] = runs
    out["summary"] = summarise(out, spec, args)
    return out


def summarise(out: dict[str, Any], spec: Spec, args: argparse.Namespace) -> dict[str, Any]:
    runs = out["runs"]
    bare_s = statistics.median(r["wall_seconds"] for r in runs["bare"])
    agg_s = statistics.median(r["wall_seconds"] for r in runs["aggregate"])
    cold_s = statistics.median(r["wall_seconds"] for r in runs["aggregate_cold"])
    one, rerun, window = runs["push_1_month"], runs["push_1_month_rerun"], runs["push_window"]
    summary: dict[str, Any] = {
        "docs_one_month": one["docs"],
        "bare_read_s": round(bare_s, 3),
        "aggregate_one_month_s": round(agg_s, 3),
        "read_bound_ratio": round(agg_s / bare_s, 3),
        "aggregate_one_month_cold_s": round(cold_s, 3),
        "read_bound_ratio_cold": round(cold_s / bare_s, 3),
        "pure_docs_per_second": round(out["pure"]["docs_per_second"]),
        "json_share_pure": round(out["pure"]["json_share_of_decode_plus_aggregate"], 3),
        "json_share_of_cpu_push_1_month": round(one["json_seconds"] / one["cpu_seconds"], 3),
        "peak_rss_mb": {
            "aggregate_1_month": round(
                max(r["peak_rss_mb"] for r in runs["aggregate"] + runs["aggregate_cold"]), 1
            ),
            **{
                name: round(runs[name]["peak_rss_mb"], 1)
                for name in ("push_1_month", "push_1_month_rerun", "push_window")
            },
        },
        "push_1_month": {
            **split(one),
            "docs_per_second": round(one["docs"] / one["wall_seconds"]),
            "cht_requests": one["cht_requests"],
            "dhis2_requests": one["dhis2_http_requests"],
            "dhis2_posts": one["dhis2_posts"],
            "values_computed": one["values_computed"],
            "values_sent": one["values_sent"],
            "status": one["status"],
        },
        "push_1_month_rerun": {
            **split(rerun),
            "cht_requests": rerun["cht_requests"],
            "dhis2_requests": rerun["dhis2_http_requests"],
            "dhis2_posts": rerun["dhis2_posts"],
            "values_sent": rerun["values_sent"],
            "status": rerun["status"],
        },
        "push_window": {
            **split(window),
            "months": len(spec.months),
            "docs": window["docs"],
            "docs_per_second": round(window["docs"] / window["wall_seconds"]),
            "cht_requests": window["cht_requests"],
            "dhis2_requests": window["dhis2_http_requests"],
            "dhis2_posts": window["dhis2_posts"],
            "values_sent": window["values_sent"],
            "per_period": window["per_period"],
            "status": window["status"],
        },
        "expected": {
            # a page holds page_size docs; the last page may be empty of "next"
            "cht_target_pages_one_month": one["docs"] // args.page_size + 1,
            "dhis2_posts_one_month": math.ceil(one["values_sent"] / args.chunk_size),
        },
    }
    if "push_double" in runs:
        dbl, dagg = runs["push_double"], runs["aggregate_double"]
        summary["double"] = {
            "docs": dbl["docs"],
            "peak_rss_mb_push": round(dbl["peak_rss_mb"], 1),
            "peak_rss_mb_aggregate": round(dagg["peak_rss_mb"], 1),
            "rss_growth_push": round(dbl["peak_rss_mb"] / one["peak_rss_mb"] - 1, 3),
            "rss_growth_aggregate": round(
                dagg["peak_rss_mb"] / runs["aggregate"][0]["peak_rss_mb"] - 1, 3
            ),
        }
    peak = max(summary["peak_rss_mb"].values())
    growth = summary.get("double", {}).get("rss_growth_push")
    summary["targets_met"] = {
        "read_bound": summary["read_bound_ratio"] <= TARGETS["read_bound_ratio_max"],
        "pure_aggregation": summary["pure_docs_per_second"] >= TARGETS["pure_docs_per_second_min"],
        "memory_peak": peak <= TARGETS["peak_rss_mb_max"],
        "memory_growth": None
        if growth is None
        else growth < TARGETS["rss_growth_when_docs_double_max"],
        "rerun_sends_nothing": rerun["values_sent"] == 0,
    }
    return summary


def table(out: dict[str, Any]) -> str:
    s = out["summary"]
    m = out["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Python {m['python']}, node {m['node']}",
        f"deployment: {out['spec']['cus']} org units, {out['spec']['users']} users, "
        f"{s['docs_one_month']} target docs/month, {out['spec']['targets']} targets "
        f"({out['spec']['mapped']} mapped, {out['spec']['rows_per_org_unit']} rows/org unit); "
        f"loaded {out['load']['docs']} docs in {out['load']['seconds']} s",
        "",
        f"{'figure':<52}{'value':>14}  target",
        f"{'-' * 52}{'-' * 14}  {'-' * 20}",
    ]

    def row(name: str, value: Any, target: str = "") -> None:
        lines.append(f"{name:<52}{value!s:>14}  {target}")

    t = s["targets_met"]

    def ok(flag: bool | None) -> str:
        return "" if flag is None else ("met" if flag else "MISSED")

    row("bare paged read, 1 month (s)", s["bare_read_s"])
    row("aggregate 1 month from CouchDB, warm (s)", s["aggregate_one_month_s"])
    row("  ratio aggregate / bare read", s["read_bound_ratio"], f"<= 1.3  {ok(t['read_bound'])}")
    row("aggregate 1 month, first run: cold (s)", s["aggregate_one_month_cold_s"])
    row("  ratio cold aggregate / bare read", s["read_bound_ratio_cold"])
    row(
        "pure aggregation (docs/s)",
        s["pure_docs_per_second"],
        f">= 50k  {ok(t['pure_aggregation'])}",
    )
    row("JSON decode share (decode+aggregate, in memory)", s["json_share_pure"])
    row("JSON decode share of CPU (push 1 month)", s["json_share_of_cpu_push_1_month"])
    for name, rss in s["peak_rss_mb"].items():
        row(f"peak RSS {name} (MB)", rss, f"<= 200  {ok(rss <= 200)}")
    if "double" in s:
        d = s["double"]
        row(f"peak RSS push, 2x docs ({d['docs']}) (MB)", d["peak_rss_mb_push"])
        row(
            "  growth when docs double (push)",
            d["rss_growth_push"],
            f"< 0.10  {ok(t['memory_growth'])}",
        )
        row("  growth when docs double (aggregate)", d["rss_growth_aggregate"])
    for key, label in (
        ("push_1_month", "push 1 month"),
        ("push_1_month_rerun", "re-run 1 month"),
        ("push_window", f"push {out['spec']['months'].__len__()}-month window"),
    ):
        p = s[key]
        row(f"{label}: wall (s)", p["wall_s"])
        row("  waiting on CHT (s)", p["waiting_on_cht_s"])
        row("  waiting on DHIS2 stand-in (s)", p["waiting_on_dhis2_s"])
        row("  mediator main thread (s)", p["mediator_main_thread_s"])
        row("  mediator CPU, all threads (s)", p["mediator_cpu_all_threads_s"])
        row("  requests to CHT", p["cht_requests"])
        row("  requests to DHIS2 (POSTs)", f"{p['dhis2_requests']} ({p['dhis2_posts']})")
        row(
            "  values sent",
            p["values_sent"],
            "0  " + ok(t["rerun_sends_nothing"]) if key == "push_1_month_rerun" else "",
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = benchmark(args)
    RESULTS.mkdir(exist_ok=True)
    path = args.out or RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
