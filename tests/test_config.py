"""numlin._config: the environment read once, validated, and overridable for a block."""
from __future__ import annotations

import dataclasses

import pytest

from numlin._config import Config, config, override


def test_defaults_with_an_empty_environment():
    c = Config.from_environ({})
    assert c == Config()
    assert c.conv_fused and c.conv_shifted and c.conv_dw_dot and c.demo_prewarm
    assert c.conv_workspace_bytes == 64 << 20 and c.blocking == "" and c.ptxas is None
    assert c.cpu_pool_bytes == 512 << 20


def test_environment_values_are_read():
    c = Config.from_environ({"NUMLIN_CONV_FUSED": "0", "NUMLIN_CONV_SHIFTED": "0", "NUMLIN_CONV_DW_DOT": "0",
                             "NUMLIN_CONV_WORKSPACE_MB": "0.5", "NUMLIN_BLOCKING": "float32:mr=4",
                             "NUMLIN_PTXAS": "", "NUMLIN_DEMO_PREWARM": "0", "NUMBA_CACHE_DIR": "/tmp/x"})
    assert not (c.conv_fused or c.conv_shifted or c.conv_dw_dot or c.demo_prewarm)
    assert c.conv_workspace_bytes == 1 << 19
    assert c.blocking == "float32:mr=4" and c.ptxas == "" and c.numba_cache_dir == "/tmp/x"


@pytest.mark.parametrize("raw, want", [("0", 0), ("64", 64 << 20), ("-1", 512 << 20), ("lots", 512 << 20)])
def test_the_cpu_pool_size_may_be_zero_and_a_bad_one_warns(raw, want):
    if want == 512 << 20:
        with pytest.warns(RuntimeWarning, match=f"NUMLIN_CPU_POOL_MB={raw!r} is not a non-negative"):
            c = Config.from_environ({"NUMLIN_CPU_POOL_MB": raw})
    else:
        c = Config.from_environ({"NUMLIN_CPU_POOL_MB": raw})
    assert c.cpu_pool_bytes == want


@pytest.mark.parametrize("raw", ["-1", "0", "nan", "inf", "lots"])
def test_a_bad_workspace_size_warns_naming_the_variable_and_keeps_the_default(raw):
    with pytest.warns(RuntimeWarning, match=f"NUMLIN_CONV_WORKSPACE_MB={raw!r}"):
        c = Config.from_environ({"NUMLIN_CONV_WORKSPACE_MB": raw})
    assert c.conv_workspace_bytes == 64 << 20


def test_a_bad_switch_warns_naming_the_variable_and_keeps_the_default():
    with pytest.warns(RuntimeWarning, match="NUMLIN_CONV_FUSED='yes' is neither '0' nor '1'"):
        c = Config.from_environ({"NUMLIN_CONV_FUSED": "yes"})
    assert c.conv_fused


def test_override_restores_on_exit_and_on_error():
    before = dataclasses.asdict(config)
    with override(conv_fused=not config.conv_fused) as c:
        assert c is config and config.conv_fused != before["conv_fused"]
    assert dataclasses.asdict(config) == before
    with pytest.raises(KeyError):
        with override(conv_depthwise=False):
            assert not config.conv_depthwise
            raise KeyError("inside")
    assert dataclasses.asdict(config) == before


def test_override_rejects_unknown_names():
    with pytest.raises(TypeError, match="unknown setting.*conv_fuzed"):
        with override(conv_fuzed=False):
            pass

