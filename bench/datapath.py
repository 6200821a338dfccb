#!/usr/bin/env python3
"""Datapath benchmark: ktest_nic against the in-tree e1000e, one guest.

Boots the e1000e profile once and alternates the two drivers on the same NIC
(unload one, load the other) so both see the same guest, the same QEMU and
the same host load. For each driver and round:

  rx  the host peer offers 590-byte UDP frames at --offer frames/s for
      --seconds; the guest's flow sink counts what reached the socket;
      rx rate = frames delivered / seconds offered
  tx  the guest's flow agent sends --tx-count 590-byte frames as fast as it
      can; the host peer counts what arrived;
      tx rate = frames arrived / the agent's send time
  tcp the guest sends --tcp-bytes over one TCP connection in 64 KiB writes
      (TSO where the driver has it) to the peer's TCP receiver, which checks
      every segment; tcp rate = bytes / the connection's time (SYN to FIN)

and prints the medians and the ratios ktest_nic / e1000e (target >= 1.0).
--also LABEL=SRC adds a driver built from another source directory (an
older ktest_nic, say) to the same rounds, to tell a driver change from a
host or kernel change; its ratio to e1000e is printed too.

    .venv/bin/python bench/datapath.py [--rounds 3] [--seconds 4] [--json]
    .venv/bin/python bench/datapath.py --also old=/tmp/ktest_nic-82a62e0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.machine import session
from orchestrator.scenario import drivers as drivers_mod  # noqa: E402
from orchestrator.scenario import dut as dut_mod  # noqa: E402
from orchestrator.scenario import traffic  # noqa: E402

TARGET = 1.0
SIZE = 590
SINK, PEER_PORT = 7000, 7001
TCP_PORT = 5201


def measure_tcp(peer: traffic.Peer, agent: traffic.GuestAgent, nbytes: int) -> float:
    sink = peer.tcp_sink(TCP_PORT)
    res = agent.tcp_send(dut_mod.PEER_IP4, TCP_PORT, nbytes, timeout=600)
    conns = sink.wait_closed(1, timeout=60)
    if "error" in res or not conns or conns[-1].faults or conns[-1].bytes != nbytes:
        raise SystemExit(f"datapath: the TCP stream went wrong: {res} "
                         f"{conns[-1].as_dict() if conns else 'no connection closed'}")
    c = conns[-1]
    assert c.closed is not None
    return c.bytes / (c.closed - c.opened)


def measure(d: dut_mod.Dut, peer: traffic.Peer, agent: traffic.GuestAgent, flow_id: int,
            offer: int, seconds: float, tx_count: int) -> tuple[float, float, int]:
    flow = traffic.Flow(flow_id, dut_mod.PEER_IP4, dut_mod.GUEST_IP4, 40000 + flow_id, SINK,
                        SIZE)
    agent.sink(port=SINK, duration=seconds + 60, idle=2)
    sent = peer.send_flow(flow, int(offer * seconds), rate=offer, dst_mac=d.mac)
    res = agent.sink_result(timeout=seconds + 90)
    got = res["flows"].get(str(flow_id), {}).get("received", 0)
    rx = got / max(sent.seconds, seconds)
    sock_drops = int(res.get("socket_drops") or 0)

    tx_flow = flow_id + 1000
    out = agent.send(dst=dut_mod.PEER_IP4, port=PEER_PORT, flow=tx_flow, count=tx_count,
                     size=SIZE, rate=0)
    time.sleep(1)
    arrived = peer.rx(tx_flow).received
    tx = arrived / max(float(out.get("seconds", 0.0)), 1e-3)
    return rx, tx, sock_drops


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0, help="Rx offer duration per round")
    ap.add_argument("--offer", type=int, default=40000, help="Rx offered frames/s")
    ap.add_argument("--tx-count", type=int, default=20000)
    ap.add_argument("--tcp-bytes", type=int, default=32 << 20)
    ap.add_argument("--machine", default="e1000e")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=SRC",
                    help="another driver (a module source directory) in the same rounds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    arts = session.artifacts()
    names = {"e1000e": "e1000e", "ktest_nic": "ktest_nic"}
    for spec in args.also:
        label, _, src = spec.partition("=")
        names[label] = src
    drivers = {label: drivers_mod.resolve_driver(src, arts) for label, src in names.items()}
    rates: dict[str, dict[str, list[float]]] = {k: {"rx": [], "tx": [], "tcp": []}
                                                for k in drivers}
    with tempfile.TemporaryDirectory(prefix="ktest-bench-") as tmp:
        m = session.make_machine(args.machine, arts, run_dir=Path(tmp) / "run")
        try:
            m.launch()
            nic = m.profile.nics[0]
            peer = traffic.Peer(m.nic_sockets[nic.id], mac=dut_mod.PEER_MAC,
                                ips=(dut_mod.PEER_IP4, dut_mod.PEER_IP6),
                                subnet_v4=dut_mod.SUBNET4, subnet_v6=dut_mod.SUBNET6)
            with peer:
                fid = 1
                for rnd in range(args.rounds):
                    order = list(drivers)
                    order = order[rnd % len(order):] + order[:rnd % len(order)]
                    for name in order:
                        d = dut_mod.Dut(m, nic, drivers[name])
                        d.load()
                        d.setup()
                        agent = traffic.GuestAgent(d.guest)
                        # warm up ARP both ways before measuring
                        d.sh(f"ping -c 2 -i 0.2 -W 3 {dut_mod.PEER_IP4}", check=False)
                        rx, tx, drops = measure(d, peer, agent, fid, args.offer,
                                                args.seconds, args.tx_count)
                        tcp = measure_tcp(peer, agent, args.tcp_bytes)
                        fid += 1
                        rates[name]["rx"].append(rx)
                        rates[name]["tx"].append(tx)
                        rates[name]["tcp"].append(tcp)
                        print(f"round {rnd + 1}/{args.rounds} {name:<9}: rx {rx:8.0f} "
                              f"frames/s ({drops} dropped at the sink's socket), "
                              f"tx {tx:8.0f} frames/s, tcp {tcp / 1e6:7.1f} MB/s",
                              file=sys.stderr)
                        agent.stop()
                        d.unload(check_leaks=False)
        finally:
            accel = m.argv[m.argv.index("-accel") + 1] if m.argv else "?"
            m.shutdown()
    med = {k: {d: statistics.median(v) for d, v in r.items()} for k, r in rates.items()}
    ratios = {name: {d: med[name][d] / med["e1000e"][d] if med["e1000e"][d] else 0.0
                     for d in ("rx", "tx", "tcp")} for name in drivers if name != "e1000e"}
    ratio = ratios["ktest_nic"]
    result = {
        "machine": args.machine, "accel": accel, "rounds": args.rounds, "frame_size": SIZE,
        "rx_offer_fps": args.offer, "tcp_bytes": args.tcp_bytes,
        "median": {k: {("tcp_bytes_per_s" if d == "tcp" else f"{d}_fps"): round(v)
                       for d, v in r.items()} for k, r in med.items()},
        "ratio_ktest_nic_over_e1000e": {d: round(v, 3) for d, v in ratio.items()},
        "ratios_over_e1000e": {n: {d: round(v, 3) for d, v in r.items()}
                               for n, r in ratios.items()},
        "target": TARGET, "met": all(v >= TARGET for v in ratio.values()),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"datapath, {args.machine} ({accel}), {SIZE}-byte frames, "
              f"{args.rounds} rounds (medians)")
        for name in drivers:
            print(f"  {name:<9} rx {med[name]['rx']:8.0f} frames/s   "
                  f"tx {med[name]['tx']:8.0f} frames/s   tcp {med[name]['tcp'] / 1e6:7.1f} MB/s")
        print(f"  ratio ktest_nic/e1000e: rx {ratio['rx']:.3f}, tx {ratio['tx']:.3f}, "
              f"tcp {ratio['tcp']:.3f} "
              f"(target >= {TARGET}: {'met' if result['met'] else 'NOT met'})")
        for name, r in ratios.items():
            if name != "ktest_nic":
                print(f"  ratio {name}/e1000e: rx {r['rx']:.3f}, tx {r['tx']:.3f}, "
                      f"tcp {r['tcp']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
