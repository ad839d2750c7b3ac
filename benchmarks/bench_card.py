"""The emulated card's speed: in-process, over the vpcd socket, and through pcscd + pyscard.

Figures (issue 2):
- in-process READ BINARY APDUs per second on one core (the card alone, and through the
  in-process transport and the Card API);
- the full MyKey flow (select, read the ~1.6 KB certificate, verify PIN, sign), median, with
  counters in memory and with counters written to the card file (fsync each change);
- through pcscd + vpcd + pyscard: per short APDU median and p99, and the full flow's median.

Figures (issue 14):
- the card-info AP read and verified as a relying party does (PIN, EF 0001-0005, the J-LIS
  signature and its certificate chain), median, in process and through pcscd;
- the card-face AP read whole (its images included) through pcscd (and in process): APDUs and
  median time with SELECT and 256-byte reads versus one extended-Le read a file.

Run: ``python benchmarks/bench_card.py [--seconds S] [--flows N]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from random import Random

from cryptography import x509

from mynahil import vpcd_protocol
from mynahil.card import MyNumberCard, Pin
from mynahil.card_emulator import (
    CardFile,
    CardState,
    EmulatedCard,
    emulated_reader,
    open_transport,
    save_card,
)
from mynahil.card_emulator.pin import DEFAULT_PASSWORD, DEFAULT_PIN
from mynahil.demo import run_card_flow
from mynahil.reference_impl.jlis import JlisCA, issue_card, random_holder
from mynahil.stats import percentile
from mynahil.transports import Transport

PIN = DEFAULT_PIN


def _pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def rate(fn: Callable[[], object], seconds: float, repeats: int = 3) -> float:
    """Calls per second of ``fn``: the median of ``repeats`` runs of about ``seconds`` each
    (this machine is a VM whose speed drifts; one run can be off by a third)."""
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(1000):
                fn()
            n += 1000
            now = time.perf_counter()
            if now >= deadline:
                rates.append(n / (now - start))
                break
    return statistics.median(rates)


def read_binary_rates(state: CardState, seconds: float) -> dict[str, float]:
    card = EmulatedCard(state)
    for apdu in ("00A4040C0AD392F000260100000001", "00A4020C02000A"):
        assert card.transmit(bytes.fromhex(apdu)) == b"\x90\x00"
    read = bytes.fromhex("00B0000000")
    assert card.transmit(read)[-2:] == b"\x90\x00"
    raw = rate(lambda: card.transmit(read), seconds)
    api = emulated_reader(card)
    api.read_auth_certificate()
    through_api = rate(lambda: api.read_binary(0, 256), seconds)
    return {
        "inproc_read_binary_per_s": round(raw),
        "inproc_read_binary_card_api_per_s": round(through_api),
    }


def flow_times(transport: Transport, ca_cert: bytes, flows: int) -> list[float]:
    times = []
    transport.connect()
    try:
        for _ in range(flows):
            transport.reset()
            run = run_card_flow(transport, ca_cert, PIN)
            if not (run.signature_valid and run.chain_valid):
                raise SystemExit("a signature did not verify: the benchmark is void")
            times.append(run.seconds * 1000)
    finally:
        transport.disconnect()
    return times


def apdu_times(transport: Transport, count: int) -> dict[str, list[float]]:
    """Round trips of short APDUs: a 4-byte READ BINARY (case 2) and a retry query (case 1)."""
    transport.connect()
    try:
        card = MyNumberCard(transport)
        card.read_auth_certificate()
        read4 = bytes.fromhex("00B0000004")
        out: dict[str, list[float]] = {"read4": [], "read256": [], "verify_query": []}
        read256 = bytes.fromhex("00B0000000")
        for _ in range(count):
            t0 = time.perf_counter()
            transport.transmit(read4)
            t1 = time.perf_counter()
            transport.transmit(read256)
            t2 = time.perf_counter()
            out["read4"].append((t1 - t0) * 1000)
            out["read256"].append((t2 - t1) * 1000)
        card.tries_left(Pin.AUTH)  # selects the PIN EF
        query = bytes.fromhex("00200080")
        for _ in range(count):
            t0 = time.perf_counter()
            transport.transmit(query)
            out["verify_query"].append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        transport.disconnect()


def card_info_times(transport: Transport, root: x509.Certificate, count: int) -> list[float]:
    """Relying party: verify the card-info PIN, read EF 0001-0005, check EF 0003 and 0004."""
    times = []
    transport.connect()
    try:
        for _ in range(count):
            transport.reset()
            api = MyNumberCard(transport)
            t0 = time.perf_counter()
            api.read_card_info(PIN, signed=True).verify(root)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        transport.disconnect()
    return times


def card_face_reads(
    transport: Transport, my_number: str, count: int, *, extended: bool
) -> tuple[list[float], int, int]:
    """The whole card face (照合番号A, EF 0004, 0001, 0002, 0005): times, APDUs a read, bytes."""
    times, apdus, size = [], 0, 0
    transport.connect()
    try:
        for _ in range(count):
            transport.reset()
            api = MyNumberCard(transport)
            t0 = time.perf_counter()
            face = api.read_card_face(my_number, extended=extended)
            times.append((time.perf_counter() - t0) * 1000)
            apdus = api.apdus_sent
            size = sum(
                len(f or b"")
                for f in (face.certificate, face.birth_file, face.entries_file, face.my_number_file)
            )
    finally:
        transport.disconnect()
    return times, apdus, size


def card_data_figures(
    wire: str, state: CardState, root: x509.Certificate, count: int
) -> dict[str, object]:
    out: dict[str, object] = {}
    info = card_info_times(open_transport(wire, EmulatedCard(state)), root, count)
    out[f"{wire}_cardinfo_verify_median_ms"] = round(statistics.median(info), 3)
    for mode, extended in (("short", False), ("extended", True)):
        times, apdus, size = card_face_reads(
            open_transport(wire, EmulatedCard(state)), state.holder.my_number, count,
            extended=extended,
        )  # fmt: skip
        out[f"{wire}_cardface_{mode}_median_ms"] = round(statistics.median(times), 3)
        out[f"{wire}_cardface_{mode}_apdus"] = apdus
        out["cardface_bytes"] = size
    print(
        f"{wire}: card-info read + verify median {out[f'{wire}_cardinfo_verify_median_ms']} ms; "
        f"card face ({out['cardface_bytes']:,} bytes) "
        f"{out[f'{wire}_cardface_short_apdus']} APDUs / "
        f"{out[f'{wire}_cardface_short_median_ms']} ms with 256-byte reads, "
        f"{out[f'{wire}_cardface_extended_apdus']} APDUs / "
        f"{out[f'{wire}_cardface_extended_median_ms']} ms with extended Le"
    )
    return out


def stalled_median(state: CardState, count: int = 40) -> float:
    """The 44 ms trap, measured: the same wire with TCP_QUICKACK left alone on the card side."""
    vpcd_protocol.QUICKACK = False
    try:
        transport = open_transport("vpcd", EmulatedCard(state))
        return round(statistics.median(apdu_times(transport, count)["read4"]), 3)
    finally:
        vpcd_protocol.QUICKACK = True


def wire_figures(
    state: CardState, ca: JlisCA, root: x509.Certificate, args: argparse.Namespace
) -> dict[str, object]:
    """The socket and (when pcscd is there) pcscd + vpcd figures."""
    figures: dict[str, object] = {}
    wires = ["socket"]
    try:
        from mynahil.pcscd import PcscdUnavailable, pcscd_running

        stack = pcscd_running()
        stack.__enter__()
        wires.append("vpcd")
    except (PcscdUnavailable, ImportError) as exc:
        print(f"pcscd path not measured: {exc}", file=sys.stderr)
        stack = None
    try:
        for wire in wires:
            card = EmulatedCard(state)
            lat = apdu_times(open_transport(wire, card), args.apdus)
            flows = flow_times(
                open_transport(wire, EmulatedCard(state)), ca.auth_ca_certificate, args.flows
            )
            for kind, values in lat.items():
                figures[f"{wire}_{kind}_median_ms"] = round(statistics.median(values), 4)
                figures[f"{wire}_{kind}_p99_ms"] = round(percentile(values, 99), 4)
            figures[f"{wire}_flow_median_ms"] = round(statistics.median(flows), 3)
            print(
                f"{wire}: short APDU (READ BINARY 4) median "
                f"{figures[f'{wire}_read4_median_ms']} ms, "
                f"p99 {figures[f'{wire}_read4_p99_ms']} ms; full flow median "
                f"{figures[f'{wire}_flow_median_ms']} ms"
            )
            if wire == "vpcd":
                figures.update(card_data_figures(wire, state, root, args.card_data))
                stalled = stalled_median(state)
                figures["vpcd_read4_median_ms_without_quickack"] = stalled
                print(f"vpcd without TCP_QUICKACK on the card side: {stalled} ms per APDU")
    finally:
        if stack is not None:
            stack.__exit__(None, None, None)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput figure")
    parser.add_argument("--flows", type=int, default=200, help="full flows per transport")
    parser.add_argument("--apdus", type=int, default=2000, help="APDUs per wire for latency")
    parser.add_argument("--card-data", type=int, default=100,
                        help="card-info verifications and card-face reads per wire")  # fmt: skip
    args = parser.parse_args()
    _pin_to_one_core()

    with tempfile.TemporaryDirectory() as tmp:
        ca = JlisCA.create(Path(tmp) / "ca")
        state = issue_card(
            ca, random_holder(Random(1)), pin=PIN, password=DEFAULT_PASSWORD, issued_on=date.today()
        )
        assert state.auth is not None
        figures: dict[str, object] = {"cert_bytes": len(state.auth.certificate)}
        figures.update(read_binary_rates(state, args.seconds))
        print(
            f"in-process READ BINARY: {figures['inproc_read_binary_per_s']:,}/s (card), "
            f"{figures['inproc_read_binary_card_api_per_s']:,}/s (through the Card API)"
        )

        # Not emulated_reader: in process is timed by the loop every wire is timed by (flow_times
        # connects, resets before each flow, disconnects), so it is opened by its spec too.
        memory = flow_times(
            open_transport("inproc", EmulatedCard(state)), ca.auth_ca_certificate, args.flows
        )
        path = Path(tmp) / "card.json"
        save_card(state, path)
        with CardFile(path) as stored:
            durable = flow_times(
                open_transport("inproc", EmulatedCard(stored.state, stored)),
                ca.auth_ca_certificate,
                args.flows,
            )
        figures["inproc_flow_median_ms"] = round(statistics.median(memory), 3)
        figures["inproc_flow_p99_ms"] = round(percentile(memory, 99), 3)
        figures["inproc_flow_durable_counters_median_ms"] = round(statistics.median(durable), 3)
        print(
            f"in-process full flow: median {figures['inproc_flow_median_ms']} ms "
            f"(counters in memory), {figures['inproc_flow_durable_counters_median_ms']} ms "
            "(counters fsynced to the card file)"
        )

        root = x509.load_der_x509_certificate(ca.auth_ca_certificate)
        figures.update(card_data_figures("inproc", state, root, args.card_data))

        figures.update(wire_figures(state, ca, root, args))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
