"""The issue #15 measurement tools: the configured runs and the profile grouping."""

from __future__ import annotations

from benchmarks import configured
from benchmarks.fake_server import serve_in_subprocess
from benchmarks.fixtures import REPO
from benchmarks.profile_path import OTHER, _parse_raw, group_of


def test_configured_runs_tlm_sequentially_and_the_raw_floor() -> None:
    with serve_in_subprocess(0, core=None) as base_url:
        tlm = configured.run_in_subprocess(REPO, base_url, 5, 1, core=None, client="tlm")
        raw = configured.run_in_subprocess(REPO, base_url, 5, 1, core=None, client="raw")
        mapped = configured.run_in_subprocess(REPO, base_url, 8, 4, core=None, client="tlm")
    for figures in (tlm, raw, mapped):
        assert set(figures) >= {"throughput", "p50", "p99", "wall_s", "cpu_us"}
        assert figures["throughput"] > 0
        assert figures["cpu_us"] > 0
        assert 0 < figures["p50"] <= figures["p99"]


def test_profile_groups_by_innermost_tlm_frame_then_library() -> None:
    raw = "\n".join(
        [
            # json under the provider transport counts as the provider's
            "run (a/asyncio/events.py:80);post (tlm/providers/_http.py:98);"
            "iterencode (/usr/lib/python3.11/json/encoder.py:258) 7",
            # the innermost tlm frame wins over outer ones
            "execute (tlm/engine/engine.py:1);on_end (tlm/telemetry/processor.py:90) 3",
            "to_json (/x/site-packages/tlm/telemetry/redact.py:350) 2",
            # no tlm frame: the library's group
            "_run_once (/usr/lib/python3.11/asyncio/base_events.py:1906) 5",
            "data_received (/x/site-packages/aiohttp/client_proto.py:359) 4",
            "something (/x/unknown.py:1) 1",
            "not a sample line",
        ]
    )
    counts = _parse_raw(raw)
    assert counts["provider request/response"] == 11
    assert counts["record building + serialisation"] == 3
    assert counts["redaction / key scrubbing"] == 2
    assert counts["event loop + anyio hops"] == 5
    assert counts[OTHER] == 1
    assert sum(counts.values()) == 22
    assert group_of("tlm/store/writer.py") == "store writer + commit wait"
    assert group_of("/nowhere/else.py") is None
